// Starting and stopping the local executor's processes.
//
// Each attempt runs in its own process group (so a deadline kills the whole
// tree), with stdout and stderr sent to one log file, stdin from /dev/null,
// no other inherited descriptor,
// and the parent-death signal set to SIGKILL: if the executor dies, even by
// kill -9, its attempts die with it instead of running on unsupervised.
//
// Thread-safety: SpawnProcess must be called from a thread that outlives
// the child (the parent-death signal follows the spawning thread).
#ifndef CRUNCHER_LOCAL_PROCESS_H_
#define CRUNCHER_LOCAL_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace cruncher::local {

struct ProcessSpec {
  std::vector<std::string> argv;
  // Added to (and overriding) the executor's own environment.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;  // "" = inherit
  std::string log_path;     // created/truncated; stdout and stderr
};

struct ChildProcess {
  pid_t pid = -1;
  int pidfd = -1;  // readable when the child exits
};

// Starts the process. A command that cannot be executed (not found, not
// executable) still starts a child, which writes the reason to the log and
// exits with 127 (as a shell does); errors here are about the log file or
// process limits (Unavailable).
Result<ChildProcess> SpawnProcess(const ProcessSpec& spec);

// Reaps an exited child (pidfd readable); returns its exit code, 128+N if
// killed by signal N. Closes the pidfd.
int ReapProcess(ChildProcess& child);

// Sends `signal` to the child's process group.
void SignalProcessGroup(const ChildProcess& child, int signal);

// Looks `file` up in the PATH of `env` (or the current PATH) as execvp
// would; returns "" if not found.
std::string ResolveExecutable(const std::string& file, const std::string& path);

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_PROCESS_H_
