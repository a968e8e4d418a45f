#include "local/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

extern char** environ;

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

Result<ChildProcess> SpawnProcess(const ProcessSpec& spec) {
  if (spec.argv.empty()) return InvalidArgument("empty command");
  // Everything the child needs is prepared here: after fork() in a
  // multi-threaded process only async-signal-safe calls are allowed.
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos)
      env_map[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
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

  auto path_it = env_map.find("PATH");
  std::string exe = ResolveExecutable(spec.argv[0], path_it == env_map.end()
                                                        ? "/usr/bin:/bin"
                                                        : path_it->second);
  std::string not_found = "cruncher: exec " + spec.argv[0] +
                          ": executable file not found in $PATH\n";
  std::string exec_failed = "cruncher: exec " + spec.argv[0] + ": ";

  int log_fd = ::open(spec.log_path.c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return Unavailable("cannot open log file " + spec.log_path + ": " +
                       std::strerror(errno));
  }
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

}  // namespace cruncher::local
