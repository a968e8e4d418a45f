// LogFileReader: reads one attempt's log file in bounded pieces while the
// attempt may still be writing it, for JobBackend::StreamLogs.
//
// The file may not exist yet (the attempt has not opened it) or be removed
// (the Job was deleted): both read as no output. Memory use is one buffer of
// kChunkBytes however large the log grows.
//
// Thread-safety: one reader per thread.
#ifndef CRUNCHER_LOCAL_LOG_FILE_H_
#define CRUNCHER_LOCAL_LOG_FILE_H_

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

#include "core/job_backend.h"
#include "core/status.h"

namespace cruncher::local {

class LogFileReader {
 public:
  static constexpr std::size_t kChunkBytes = 64 * 1024;

  // `tail_lines` < 0 reads the whole file; otherwise the first read starts
  // at the last `tail_lines` lines of what the file holds at that moment.
  LogFileReader(std::string path, long long tail_lines);
  ~LogFileReader();
  LogFileReader(const LogFileReader&) = delete;
  LogFileReader& operator=(const LogFileReader&) = delete;

  // Writes to `sink` what was appended since the last call. Unavailable,
  // naming the file, if it cannot be read.
  Status ReadNew(LogSink& sink);

 private:
  Status Open();

  const std::string path_;
  const long long tail_lines_;
  int fd_ = -1;
  off_t offset_ = 0;
  std::vector<char> buffer_;
};

// The offset at which the last `lines` lines of the first `size` bytes of
// `fd` begin (a final newline ends the last line; it does not start one).
// Reads backwards in pieces of LogFileReader::kChunkBytes.
Result<off_t> TailOffset(int fd, off_t size, long long lines);

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_LOG_FILE_H_
