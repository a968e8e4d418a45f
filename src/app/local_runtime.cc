#include "app/local_runtime.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <thread>

namespace cruncher::app {

LocalRuntime::LocalRuntime(MessageQueue& queue, MessageQueue* dead_letter,
                           local::LocalJobStore& jobs, std::string data_dir,
                           const JobTemplate& job_template,
                           RuntimeOptions options)
    : data_dir_(std::move(data_dir)),
      dispatcher_(queue, dead_letter, jobs, job_template, options.dispatcher),
      executor_(jobs, options.executor) {}

LocalRuntime::~LocalRuntime() { Stop(); }

Status LocalRuntime::Start() {
  std::string lock_path = data_dir_ + "/executor.lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) {
    return Unavailable("cannot open " + lock_path + ": " +
                       std::strerror(errno));
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    std::ifstream in(lock_path);
    std::string pid;
    std::getline(in, pid);
    ::close(lock_fd_);
    lock_fd_ = -1;
    return FailedPrecondition(
        "another cruncher executor (pid " + (pid.empty() ? "?" : pid) +
        ") is running on " + data_dir_ + "; stop it or use another --data-dir");
  }
  std::string pid = std::to_string(::getpid()) + "\n";
  (void)!::ftruncate(lock_fd_, 0);
  (void)!::pwrite(lock_fd_, pid.data(), pid.size(), 0);
  CRUNCHER_RETURN_IF_ERROR(executor_.Start());
  dispatch_thread_ =
      std::jthread([this](std::stop_token stop) { dispatcher_.Run(stop); });
  return Status::Ok();
}

void LocalRuntime::Stop() {
  if (dispatch_thread_.joinable()) {
    dispatch_thread_.request_stop();
    dispatch_thread_.join();
  }
  executor_.Stop();
  if (lock_fd_ >= 0) {
    ::close(lock_fd_);  // releases the flock
    lock_fd_ = -1;
  }
}

}  // namespace cruncher::app
