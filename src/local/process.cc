#include "local/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <map>

#include "local/data_dir.h"

namespace cruncher::local {
namespace {

void WriteAll(int fd, const char* text) {
  size_t n = std::strlen(text);
  while (n > 0) {
    ssize_t w = ::write(fd, text, n);
    if (w <= 0) return;
    text += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

std::string ResolveExecutable(const std::string& file,
                              const std::string& path) {
  if (file.find('/') != std::string::npos) return file;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    // An empty PATH entry means the current directory.
    std::string dir =
        end > start ? path.substr(start, end - start) : std::string(".");
    std::string candidate = dir + "/" + file;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
    start = end + 1;
  }
  return "";
}

std::vector<std::pair<std::string, std::string>> BaseEnvironment() {
  std::vector<std::pair<std::string, std::string>> base;
  const char* path = std::getenv("PATH");
  base.emplace_back("PATH", path != nullptr ? path : kDefaultPath);
  for (const char* name : {"HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}) {
    if (const char* value = std::getenv(name)) base.emplace_back(name, value);
  }
  return base;
}

Result<ChildProcess> SpawnProcess(const ProcessSpec& spec) {
  if (spec.argv.empty()) return InvalidArgument("empty command");
  // Everything the child needs is prepared here: after fork() in a
  // multi-threaded process only async-signal-safe calls are allowed.
  std::map<std::string, std::string> env_map;
  for (auto& [k, v] : BaseEnvironment()) env_map[k] = std::move(v);
  for (const auto& [k, v] : spec.env) env_map[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env_map) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_strings = spec.argv;
  std::vector<char*> argv;
  for (auto& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  std::string exe = ResolveExecutable(spec.argv[0], env_map["PATH"]);
  std::string not_found = "cruncher: exec " + spec.argv[0] +
                          ": executable file not found in $PATH\n";
  std::string exec_failed = "cruncher: exec " + spec.argv[0] + ": ";

  auto opened = OpenPrivateFile(spec.log_path, O_WRONLY | O_CREAT | O_TRUNC);
  if (!opened.ok()) return opened.status().WithContext("log file");
  int log_fd = *opened;
  int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) {
    ::close(log_fd);
    return Unavailable(std::string("cannot open /dev/null: ") +
                       std::strerror(errno));
  }
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(log_fd);
    ::close(null_fd);
    return Unavailable(std::string("fork: ") + std::strerror(err));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(137);  // the executor died already
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(null_fd, 0);
    ::dup2(log_fd, 1);
    ::dup2(log_fd, 2);
    // Nothing else of the executor's reaches the task: not every library
    // opens its descriptors close-on-exec, and an inherited listening socket
    // would keep the SQS port bound after the executor died.
    ::close_range(3, ~0U, 0);
    if (!spec.working_dir.empty() && ::chdir(spec.working_dir.c_str()) != 0) {
      WriteAll(2, "cruncher: cannot enter workingDir\n");
      ::_exit(127);
    }
    if (exe.empty()) {
      WriteAll(2, not_found.c_str());
      ::_exit(127);
    }
    ::execve(exe.c_str(), argv.data(), envp.data());
    WriteAll(2, exec_failed.c_str());
    WriteAll(2, std::strerror(errno));  // glibc's table: no allocation
    WriteAll(2, "\n");
    ::_exit(127);
  }
  ::close(log_fd);
  ::close(null_fd);
  // Also set from the parent so a signal sent right away reaches the group.
  ::setpgid(pid, pid);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int err = errno;
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Unavailable(std::string("pidfd_open: ") + std::strerror(err));
  }
  return ChildProcess{pid, pidfd};
}

int ReapProcess(ChildProcess& child) {
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(child.pid, &status, 0);
  } while (r < 0 && errno == EINTR);
  ::close(child.pidfd);
  child.pidfd = -1;
  if (r < 0) return 128 + SIGKILL;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

void SignalProcessGroup(const ChildProcess& child, int signal) {
  if (child.pid > 0) ::kill(-child.pid, signal);
}

Result<std::unique_ptr<ProcessReaper>> ProcessReaper::Create(
    std::function<void()> on_exit) {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) {
    return Unavailable(std::string("eventfd for the process reaper: ") +
                       std::strerror(errno));
  }
  return std::unique_ptr<ProcessReaper>(
      new ProcessReaper(fd, std::move(on_exit)));
}

ProcessReaper::ProcessReaper(int control_fd, std::function<void()> on_exit)
    : control_fd_(control_fd), on_exit_(std::move(on_exit)) {
  thread_ = std::thread([this] { Run(); });
}

ProcessReaper::~ProcessReaper() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  uint64_t one = 1;
  (void)!::write(control_fd_, &one, sizeof one);
  thread_.join();
  for (auto& [pid, child] : watched_) {
    SignalProcessGroup(child, SIGKILL);
    ReapProcess(child);
  }
  ::close(control_fd_);
}

void ProcessReaper::Watch(const ChildProcess& child) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    watched_[child.pid] = child;
  }
  uint64_t one = 1;
  (void)!::write(control_fd_, &one, sizeof one);
}

void ProcessReaper::Signal(pid_t pid, int signal) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = watched_.find(pid);
  if (it != watched_.end()) SignalProcessGroup(it->second, signal);
}

std::vector<std::pair<pid_t, int>> ProcessReaper::TakeExits() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::exchange(exits_, {});
}

std::optional<int> ProcessReaper::KillAndWait(pid_t pid) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = watched_.find(pid);
  if (it == watched_.end()) return std::nullopt;
  SignalProcessGroup(it->second, SIGKILL);
  auto reaped = [&] {
    return std::find_if(exits_.begin(), exits_.end(),
                        [&](const auto& e) { return e.first == pid; });
  };
  exited_.wait(lock, [&] { return reaped() != exits_.end(); });
  auto e = reaped();
  int code = e->second;
  exits_.erase(e);
  return code;
}

void ProcessReaper::Run() {
  for (;;) {
    std::vector<pollfd> fds = {{control_fd_, POLLIN, 0}};
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      for (const auto& [pid, child] : watched_)
        fds.push_back({child.pidfd, POLLIN, 0});
    }
    int n = ::poll(fds.data(), fds.size(), -1);
    if (n < 0) continue;  // EINTR; nothing else fails with valid fds
    if (fds[0].revents) {
      uint64_t count;
      (void)!::read(control_fd_, &count, sizeof count);
    }
    bool any = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 1; i < fds.size(); ++i) {
        if (!fds[i].revents) continue;
        auto it = std::find_if(
            watched_.begin(), watched_.end(),
            [&](const auto& w) { return w.second.pidfd == fds[i].fd; });
        if (it == watched_.end()) continue;
        // Reaped under the lock: Signal never reaches a recycled pid.
        exits_.emplace_back(it->first, ReapProcess(it->second));
        watched_.erase(it);
        any = true;
      }
    }
    if (any) {
      exited_.notify_all();
      on_exit_();
    }
  }
}

}  // namespace cruncher::local
