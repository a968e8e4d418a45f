// FakeClock: a Clock that moves only when the test says so.
//
// Thread-safety: safe from any thread (the time is an atomic).
#ifndef CRUNCHER_TESTS_UNIT_FAKES_FAKE_CLOCK_H_
#define CRUNCHER_TESTS_UNIT_FAKES_FAKE_CLOCK_H_

#include <atomic>

#include "core/clock.h"

namespace cruncher::testing {

class FakeClock final : public Clock {
 public:
  // 2026-01-01T00:00:00Z: a realistic epoch so RFC 3339 output is sane.
  explicit FakeClock(Millis start = 1'767'225'600'000) : now_(start) {}
  Millis NowMillis() const override { return now_.load(); }
  void Advance(Millis ms) { now_ += ms; }
  void Set(Millis t) { now_ = t; }

 private:
  std::atomic<Millis> now_;
};

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_FAKES_FAKE_CLOCK_H_
