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

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/status.h"

namespace cruncher::local {

struct ProcessSpec {
  std::vector<std::string> argv;
  // The task's environment, added to (and overriding) BaseEnvironment():
  // nothing else of the executor's environment reaches the task.
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;  // "" = inherit
  std::string log_path;     // created/truncated; stdout and stderr
};

struct ChildProcess {
  pid_t pid = -1;
  int pidfd = -1;  // readable when the child exits
};

// The part of the executor's environment every task gets: PATH (or
// kDefaultPath if unset), and HOME, LANG, LC_ALL, TZ and TMPDIR if set. The
// rest (credentials such as AWS_SECRET_ACCESS_KEY, CRUNCHER_* settings)
// stays with the executor, as a Pod gets only its template's env.
inline constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";
std::vector<std::pair<std::string, std::string>> BaseEnvironment();

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

// Waits for children to exit on its own thread (poll on their pidfds) and
// reaps them as they do, so that their owner can wait through its Clock and
// learn of exits through `on_exit` instead of blocking in poll(2) itself.
//
// Thread-safety: all methods are safe from any thread.
class ProcessReaper {
 public:
  // `on_exit` is called on the reaper's thread after each exit is collected;
  // it must return quickly and take no lock held while calling this class.
  static Result<std::unique_ptr<ProcessReaper>> Create(
      std::function<void()> on_exit);
  // Stops watching; children not yet reaped are killed (SIGKILL to their
  // process groups) and reaped.
  ~ProcessReaper();
  ProcessReaper(const ProcessReaper&) = delete;
  ProcessReaper& operator=(const ProcessReaper&) = delete;

  // Takes ownership of `child` (its pidfd) and watches it.
  void Watch(const ChildProcess& child);
  // Sends `signal` to the process group of `pid` if it was not reaped yet
  // (so a recycled pid is never signalled).
  void Signal(pid_t pid, int signal);
  // The children reaped since the last call, with their exit codes (as
  // ReapProcess returns them).
  std::vector<std::pair<pid_t, int>> TakeExits();
  // SIGKILLs the process group of `pid` and blocks until it is reaped;
  // returns its exit code, or nullopt if it was not watched.
  std::optional<int> KillAndWait(pid_t pid);

 private:
  ProcessReaper(int control_fd, std::function<void()> on_exit);
  void Run();

  const int control_fd_;  // eventfd: Watch and the destructor write to it
  const std::function<void()> on_exit_;
  std::mutex mu_;
  std::condition_variable exited_;
  bool stopping_ = false;                     // guarded by mu_
  std::map<pid_t, ChildProcess> watched_;     // guarded by mu_
  std::vector<std::pair<pid_t, int>> exits_;  // guarded by mu_
  std::thread thread_;
};

// Looks `file` up in the PATH of `env` (or the current PATH) as execvp
// would; returns "" if not found.
std::string ResolveExecutable(const std::string& file, const std::string& path);

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_PROCESS_H_
