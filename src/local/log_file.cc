#include "local/log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cruncher::local {
namespace {

Status ReadError(const std::string& path, int error) {
  return Unavailable("cannot read log " + path + ": " + std::strerror(error));
}

}  // namespace

Result<off_t> TailOffset(int fd, off_t size, long long lines) {
  if (lines <= 0) return size;
  std::vector<char> buffer(LogFileReader::kChunkBytes);
  // A final newline ends the last line: start looking before it.
  off_t end = size;
  if (end > 0) {
    char last = 0;
    if (::pread(fd, &last, 1, end - 1) != 1) return Internal("pread failed");
    if (last == '\n') --end;
  }
  long long found = 0;
  while (end > 0) {
    const off_t begin =
        std::max<off_t>(0, end - static_cast<off_t>(buffer.size()));
    const size_t want = static_cast<size_t>(end - begin);
    ssize_t got = ::pread(fd, buffer.data(), want, begin);
    if (got < 0 && errno == EINTR) continue;
    if (got != static_cast<ssize_t>(want)) {
      return Internal(std::string("pread failed: ") +
                      (got < 0 ? std::strerror(errno) : "short read"));
    }
    for (size_t i = want; i-- > 0;) {
      if (buffer[i] == '\n' && ++found == lines) return begin + i + 1;
    }
    end = begin;
  }
  return 0;
}

LogFileReader::LogFileReader(std::string path, long long tail_lines)
    : path_(std::move(path)), tail_lines_(tail_lines) {}

LogFileReader::~LogFileReader() {
  if (fd_ >= 0) ::close(fd_);
}

Status LogFileReader::Open() {
  fd_ = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd_ < 0) {
    // Not written yet, or deleted with its Job: no output (yet).
    return errno == ENOENT ? Status::Ok() : ReadError(path_, errno);
  }
  if (tail_lines_ < 0) return Status::Ok();
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return ReadError(path_, errno);
  auto offset = TailOffset(fd_, st.st_size, tail_lines_);
  if (!offset.ok()) return offset.status().WithContext("log " + path_);
  offset_ = *offset;
  return Status::Ok();
}

Status LogFileReader::ReadNew(LogSink& sink) {
  if (fd_ < 0) {
    CRUNCHER_RETURN_IF_ERROR(Open());
    if (fd_ < 0) return Status::Ok();
  }
  buffer_.resize(kChunkBytes);
  while (true) {
    ssize_t got = ::pread(fd_, buffer_.data(), buffer_.size(), offset_);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return ReadError(path_, errno);
    if (got == 0) return Status::Ok();
    offset_ += got;
    sink.Write(std::string_view(buffer_.data(), static_cast<size_t>(got)));
  }
}

}  // namespace cruncher::local
