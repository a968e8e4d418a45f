#include "local/doorbell.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "local/data_dir.h"

namespace cruncher::local {

Result<std::unique_ptr<Doorbell>> Doorbell::Open(const std::string& path) {
  auto opened = OpenPrivateFile(path, O_RDWR | O_CREAT);
  if (!opened.ok()) return opened.status().WithContext("doorbell");
  int file_fd = *opened;
  int inotify_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (inotify_fd < 0 ||
      inotify_add_watch(inotify_fd, path.c_str(), IN_MODIFY) < 0) {
    std::string why = std::strerror(errno);
    ::close(file_fd);
    if (inotify_fd >= 0) ::close(inotify_fd);
    return Unavailable("cannot watch doorbell file " + path + ": " + why);
  }
  int wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd < 0) {
    std::string why = std::strerror(errno);
    ::close(file_fd);
    ::close(inotify_fd);
    return Unavailable("eventfd: " + why);
  }
  return std::unique_ptr<Doorbell>(new Doorbell(file_fd, inotify_fd, wake_fd));
}

Doorbell::Doorbell(int file_fd, int inotify_fd, int wake_fd)
    : file_fd_(file_fd), inotify_fd_(inotify_fd), wake_fd_(wake_fd) {
  watcher_ = std::thread([this] { Watch(); });
}

Doorbell::~Doorbell() {
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  watcher_.join();
  ::close(wake_fd_);
  ::close(inotify_fd_);
  ::close(file_fd_);
}

void Doorbell::Bump() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++generation_;
  }
  cv_.notify_all();
  std::lock_guard<std::mutex> lock(listener_mu_);
  if (listener_) listener_();
}

void Doorbell::SetListener(std::function<void()> listener) {
  std::lock_guard<std::mutex> lock(listener_mu_);
  listener_ = std::move(listener);
}

void Doorbell::Ring() {
  Bump();
  // The content does not matter; the write is what inotify reports.
  char byte = 1;
  (void)!::pwrite(file_fd_, &byte, 1, 0);
}

void Doorbell::Watch() {
  pollfd fds[2] = {{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
  alignas(inotify_event) char buf[4096];
  for (;;) {
    int n = ::poll(fds, 2, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents) return;
    if (fds[0].revents) {
      while (::read(inotify_fd_, buf, sizeof buf) > 0) {
      }
      Bump();
    }
  }
}

uint64_t Doorbell::generation() const {
  std::lock_guard<std::mutex> lock(mu_);
  return generation_;
}

bool Doorbell::WaitUntil(uint64_t seen,
                         std::chrono::steady_clock::time_point deadline,
                         const std::stop_token& stop) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_until(lock, stop, deadline,
                        [&] { return generation_ != seen; });
}

}  // namespace cruncher::local
