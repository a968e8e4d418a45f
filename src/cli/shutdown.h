// Shutdown: how `watch` and `local serve` end on SIGTERM or SIGINT.
//
// A Pod is sent SIGTERM and, a grace period later (30 s by default),
// SIGKILL. Within that period the controller stops receiving, lets the Job
// creates in progress finish, hands the messages it received but turned
// into no Job back to the queue (visibility 0) and releases its Lease. An
// API server or a queue that stops answering must not stretch that past the
// grace period, so:
//   - before Running(), nothing is in flight: a signal ends the process at
//     once (exit 0);
//   - the first signal after it requests stop_token(); Wait() returns;
//   - a second signal, or two thirds of the grace period, requests
//     cancel_token(), which ends the creates in progress;
//   - if the process has not exited a second before the grace period ends,
//     it exits with status 1, saying so.
//
// Thread-safety: construct on the main thread before any other thread
// starts (the signal mask is inherited); the rest is safe from any thread.
#ifndef CRUNCHER_CLI_SHUTDOWN_H_
#define CRUNCHER_CLI_SHUTDOWN_H_

#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stop_token>
#include <thread>

#include "core/clock.h"

namespace cruncher::cli {

class Shutdown {
 public:
  explicit Shutdown(Millis grace_period);
  ~Shutdown();
  Shutdown(const Shutdown&) = delete;
  Shutdown& operator=(const Shutdown&) = delete;

  // From now on a signal stops the controller gracefully.
  void Running() { running_ = true; }
  // Blocks until the first signal.
  void Wait();
  std::stop_token stop_token() const { return stop_.get_token(); }
  std::stop_token cancel_token() const { return cancel_.get_token(); }

 private:
  void Watch();
  // The next signal, or 0 when `deadline` (steady clock, ms; 0 = none)
  // passes first.
  int NextSignal(Millis deadline) const;

  const Millis grace_period_;
  sigset_t signals_{};
  std::atomic<bool> running_{false};
  std::atomic<bool> closing_{false};
  std::stop_source stop_;
  std::stop_source cancel_;
  std::mutex mu_;
  std::condition_variable signalled_;
  std::thread watcher_;
};

}  // namespace cruncher::cli

#endif  // CRUNCHER_CLI_SHUTDOWN_H_
