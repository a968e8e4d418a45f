// FakeClock: a Clock that moves only when the test says so.
//
// Two ways to sleep on it:
//  - auto-advance (the default): SleepUntil moves the time to the deadline
//    and returns at once, so a single-threaded loop under test runs through
//    its waits without real time passing;
//  - manual (set_auto_advance(false)): SleepUntil blocks until Advance/Set
//    reaches the deadline or the stop is requested, for tests where another
//    thread drives time. sleepers() tells how many are blocked, so a test
//    can wait for a loop to reach its wait before advancing.
//
// Thread-safety: safe from any thread.
#ifndef CRUNCHER_TESTS_UNIT_FAKES_FAKE_CLOCK_H_
#define CRUNCHER_TESTS_UNIT_FAKES_FAKE_CLOCK_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>

#include "core/clock.h"

namespace cruncher::testing {

class FakeClock final : public Clock {
 public:
  // 2026-01-01T00:00:00Z: a realistic epoch so RFC 3339 output is sane.
  explicit FakeClock(Millis start = 1'767'225'600'000) : now_(start) {}
  Millis NowMillis() const override { return now_.load(); }
  void Advance(Millis ms) { Set(now_.load() + ms); }
  void Set(Millis t) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      now_ = t;
    }
    cv_.notify_all();
  }
  void set_auto_advance(bool on) { auto_advance_ = on; }

  bool SleepUntil(Millis deadline, const std::stop_token& stop) const override {
    std::unique_lock<std::mutex> lock(mu_);
    if (stop.stop_requested()) return false;
    if (auto_advance_) {
      if (now_.load() < deadline) now_ = deadline;
      return true;
    }
    ++sleepers_;
    bool reached =
        cv_.wait(lock, stop, [&] { return now_.load() >= deadline; });
    --sleepers_;
    return reached;
  }

  // Manual mode: the number of threads blocked in SleepUntil.
  int sleepers() const {
    std::lock_guard<std::mutex> lock(mu_);
    return sleepers_;
  }

 private:
  // Written under mu_ (so a sleeper cannot miss a wake-up), read lock-free.
  mutable std::atomic<Millis> now_;
  std::atomic<bool> auto_advance_{true};
  mutable std::mutex mu_;
  mutable std::condition_variable_any cv_;
  mutable int sleepers_ = 0;
};

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_FAKES_FAKE_CLOCK_H_
