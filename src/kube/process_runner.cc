#include "kube/process_runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>

extern char** environ;

namespace cruncher::kube {
namespace {

// Closes the descriptors it holds when it goes out of scope.
class Fds {
 public:
  ~Fds() {
    for (int& fd : fds_) {
      if (fd >= 0) ::close(fd);
    }
  }
  int& operator[](std::size_t i) { return fds_[i]; }
  void Close(std::size_t i) {
    if (fds_[i] >= 0) ::close(fds_[i]);
    fds_[i] = -1;
  }

 private:
  int fds_[5] = {-1, -1, -1, -1, -1};
};
constexpr std::size_t kOutRead = 0, kOutWrite = 1, kErrRead = 2, kErrWrite = 3,
                      kPidfd = 4;

std::vector<std::string> MergedEnvironment(
    const std::vector<std::pair<std::string, std::string>>& extra) {
  // A name given twice takes its last value, as Go's os/exec does.
  std::map<std::string, std::string> overrides;
  for (const auto& [name, value] : extra) overrides[name] = value;
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view entry(*e);
    const auto eq = entry.find('=');
    const std::string name(entry.substr(0, eq));
    if (overrides.count(name) == 0) out.emplace_back(entry);
  }
  for (const auto& [name, value] : overrides) out.push_back(name + "=" + value);
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// Reads what is available on `fd` into `out`. Returns false at EOF or error.
bool ReadSome(int fd, std::string& out) {
  char buf[16384];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;
  }
}

void KeepTail(std::string& s) {
  if (s.size() > kStderrTailBytes) s.erase(0, s.size() - kStderrTailBytes);
}

int ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

int WaitFor(pid_t pid) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return st;
}

}  // namespace

Result<ProcessResult> SubprocessRunner::Run(const ProcessRequest& request) {
  const std::string& command = request.command;
  Fds fds;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Unavailable(std::string("pipe: ") + std::strerror(errno));
  }
  fds[kOutRead] = out_pipe[0];
  fds[kOutWrite] = out_pipe[1];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    return Unavailable(std::string("pipe: ") + std::strerror(errno));
  }
  fds[kErrRead] = err_pipe[0];
  fds[kErrWrite] = err_pipe[1];

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[kOutWrite], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[kErrWrite], 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);

  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t no_signals, default_signals;
  sigemptyset(&no_signals);
  sigemptyset(&default_signals);
  sigaddset(&default_signals, SIGPIPE);
  sigaddset(&default_signals, SIGINT);
  sigaddset(&default_signals, SIGTERM);
  posix_spawnattr_setsigmask(&attr, &no_signals);
  posix_spawnattr_setsigdefault(&attr, &default_signals);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
                                      POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> argv_strings{command};
  argv_strings.insert(argv_strings.end(), request.args.begin(),
                      request.args.end());
  std::vector<std::string> env_strings = MergedEnvironment(request.env);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);

  pid_t pid = -1;
  const int spawn_error = ::posix_spawnp(&pid, command.c_str(), &actions, &attr,
                                         argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (spawn_error != 0) {
    std::string reason =
        "cannot run \"" + command + "\": " + std::strerror(spawn_error);
    if (spawn_error == ENOENT || spawn_error == EACCES ||
        spawn_error == ENOEXEC || spawn_error == ENOTDIR) {
      return NotFound(std::move(reason));
    }
    return Unavailable(std::move(reason));
  }
  fds.Close(kOutWrite);
  fds.Close(kErrWrite);
  fds[kPidfd] = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fds[kPidfd] < 0) {
    const int err = errno;
    ::kill(-pid, SIGKILL);
    WaitFor(pid);
    return Unavailable(std::string("pidfd_open: ") + std::strerror(err));
  }
  ::fcntl(fds[kOutRead], F_SETFL, O_NONBLOCK);
  ::fcntl(fds[kErrRead], F_SETFL, O_NONBLOCK);

  using SteadyClock = std::chrono::steady_clock;
  const auto deadline =
      SteadyClock::now() + std::chrono::milliseconds(request.timeout_ms);
  ProcessResult result;
  bool exited = false;
  while (!exited) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - SteadyClock::now())
                          .count();
    if (left <= 0) {
      ::kill(-pid, SIGKILL);
      WaitFor(pid);
      const Millis ms = request.timeout_ms;
      return Unavailable("\"" + command + "\" did not finish within " +
                         (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s"
                                         : std::to_string(ms) + " ms") +
                         "; killed");
    }
    pollfd pfds[3] = {{fds[kOutRead], POLLIN, 0},
                      {fds[kErrRead], POLLIN, 0},
                      {fds[kPidfd], POLLIN, 0}};
    const int n = ::poll(pfds, 3, static_cast<int>(left));
    if (n < 0 && errno != EINTR) {
      const int err = errno;
      ::kill(-pid, SIGKILL);
      WaitFor(pid);
      return Unavailable(std::string("poll: ") + std::strerror(err));
    }
    if (n <= 0) continue;
    // Once the child has exited, drain what it left in the pipes and stop:
    // a grandchild holding them open must not hold us up.
    exited = (pfds[2].revents & POLLIN) != 0;
    for (std::size_t i : {kOutRead, kErrRead}) {
      // POLLHUP without POLLIN is EOF too: the read below returns 0.
      const short revents = pfds[i == kOutRead ? 0 : 1].revents;
      if (fds[i] < 0 || (revents == 0 && !exited)) continue;
      std::string& sink =
          i == kOutRead ? result.stdout_data : result.stderr_tail;
      bool open = true;
      do {
        const std::size_t before = sink.size();
        open = ReadSome(fds[i], sink);
        if (sink.size() == before) break;
        if (i == kErrRead) KeepTail(sink);
      } while (open && exited);
      if (!open) fds.Close(i);
      if (result.stdout_data.size() > request.max_stdout_bytes) {
        ::kill(-pid, SIGKILL);
        WaitFor(pid);
        return InvalidArgument("\"" + command + "\" wrote more than " +
                               std::to_string(request.max_stdout_bytes) +
                               " bytes to stdout; killed");
      }
    }
  }
  result.exit_code = ExitCode(WaitFor(pid));
  return result;
}

}  // namespace cruncher::kube
