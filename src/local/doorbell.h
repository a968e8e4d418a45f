// Doorbell: a wake-up signal that crosses processes.
//
// A long poll in one process must return as soon as another process (the
// CLI's `send`, or the AWS CLI through the SQS endpoint) writes a message to
// the shared SQLite database. SQLite has no notifications, so writers ring a
// doorbell: they write to a small file in the data directory, and every
// process watching that file with inotify wakes up. Rings inside the process
// wake waiters directly.
//
// Thread-safety: all methods are safe from any thread.
#ifndef CRUNCHER_LOCAL_DOORBELL_H_
#define CRUNCHER_LOCAL_DOORBELL_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "core/status.h"

namespace cruncher::local {

class Doorbell {
 public:
  // Watches (creating) the file at `path`. Unavailable if it cannot be
  // created or watched.
  static Result<std::unique_ptr<Doorbell>> Open(const std::string& path);
  ~Doorbell();
  Doorbell(const Doorbell&) = delete;
  Doorbell& operator=(const Doorbell&) = delete;

  // Wakes every waiter, in this process and in the others watching the file.
  void Ring();

  // Calls `listener` (from any thread, quickly, without locks of the
  // caller's) on every ring; replaces the previous one; nullptr removes it.
  // Once this returns, the previous listener is not running and will not be
  // called again, so its owner may go away.
  void SetListener(std::function<void()> listener);

  // The number of rings seen so far; pass it to WaitUntil.
  uint64_t generation() const;

  // Blocks until a ring after `seen`, `deadline`, or a stop requested
  // through `stop`. True if it rang.
  bool WaitUntil(uint64_t seen, std::chrono::steady_clock::time_point deadline,
                 const std::stop_token& stop = {}) const;

 private:
  Doorbell(int file_fd, int inotify_fd, int wake_fd);
  void Watch();
  void Bump();

  const int file_fd_;
  const int inotify_fd_;
  const int wake_fd_;  // eventfd that stops the watcher thread
  mutable std::mutex mu_;
  mutable std::condition_variable_any cv_;
  uint64_t generation_ = 0;  // guarded by mu_
  // Held while the listener runs, so that SetListener waits for a call in
  // progress.
  std::mutex listener_mu_;
  std::function<void()> listener_;  // guarded by listener_mu_
  std::thread watcher_;
};

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_DOORBELL_H_
