// The data directory holds task bodies (the queue), task output (attempt
// logs) and Job records: private to the user who runs cruncher, whatever the
// umask. Directories are created 0700 and files 0600; a data directory or
// file from an older version that others can read is tightened (with a
// warning) when we own it. Tightening the directory alone already closes
// everything under it, so the per-attempt logs of an old directory are not
// walked.
//
// Thread-safety: functions only; safe from any thread.
#ifndef CRUNCHER_LOCAL_DATA_DIR_H_
#define CRUNCHER_LOCAL_DATA_DIR_H_

#include <string>

#include "core/status.h"

namespace cruncher::local {

// Creates `dir` (and missing parents; the last one 0700) or tightens an
// existing one to 0700, with the files cruncher keeps directly in it.
// Unavailable if it cannot be created or is not a directory.
Status PrepareDataDir(const std::string& dir);

// Creates `dir` 0700 if missing (its parent must exist).
Status MakePrivateDir(const std::string& dir);

// open(2) with O_CLOEXEC and, when creating, mode 0600; an existing file
// that others could read is set to 0600. Returns the descriptor, or
// Unavailable naming the path.
Result<int> OpenPrivateFile(const std::string& path, int flags);

// True if the filesystem holding `path` (a file or directory that exists)
// has no block left that this process may write: a write there fails with
// ENOSPC. False if it has room or cannot be asked.
bool FilesystemFull(const std::string& path);

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_DATA_DIR_H_
