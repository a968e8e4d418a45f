// Running a credential plugin (kubeconfig `exec`) as a child process.
//
// No shell is involved: the command is a path, or a name looked up in this
// process's PATH (as client-go's exec.Command does), and the arguments are
// passed as they are. The child gets stdin from /dev/null (Cruncher never has
// a terminal to offer), this process's environment plus the request's
// variables, no other inherited descriptor, and its own process group so that
// a plugin that hangs is killed with everything it started.
//
// ProcessRunner is the seam for tests: the exec credential provider's logic
// is tested with a fake; SubprocessRunner is the real one.
//
// Thread-safety: Run may be called from several threads at once.
#ifndef CRUNCHER_KUBE_PROCESS_RUNNER_H_
#define CRUNCHER_KUBE_PROCESS_RUNNER_H_

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace cruncher::kube {

struct ProcessRequest {
  std::string command;  // a path, or a name looked up in PATH
  std::vector<std::string> args;
  // Added to (and overriding) this process's environment.
  std::vector<std::pair<std::string, std::string>> env;
  Millis timeout_ms = 60'000;
  std::size_t max_stdout_bytes = 1 << 20;
};

struct ProcessResult {
  int exit_code = 0;  // 128+N when killed by signal N
  std::string stdout_data;
  // The end of what the process wrote on stderr (at most kStderrTailBytes).
  std::string stderr_tail;
};

inline constexpr std::size_t kStderrTailBytes = 4096;

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs the process to completion. A process that ran and exited, whatever
  // its status, is a ProcessResult. Fails with NotFound when the command does
  // not exist or cannot be executed, Unavailable when it ran past the timeout
  // (it is killed, with its process group) or could not be started, and
  // InvalidArgument when it wrote more than max_stdout_bytes (killed too).
  virtual Result<ProcessResult> Run(const ProcessRequest& request) = 0;
};

// posix_spawn with pipes for stdout and stderr, a pidfd for the exit, and a
// steady-clock deadline. Once the child has exited, output still in the pipes
// is collected and the run ends, even if a grandchild keeps them open.
class SubprocessRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> Run(const ProcessRequest& request) override;
};

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_PROCESS_RUNNER_H_
