// Clock: the one source of "now" for code that has side effects.
//
// Policy code (backoff, rate limits) never calls a clock; it takes `now` as an
// argument. Loops wait through their Clock (SleepUntil/SleepFor) with a stop
// token, so a stop interrupts the wait at once and tests drive time with a
// fake clock instead of sleeping.
//
// Thread-safety: implementations are safe to call from any thread.
#ifndef CRUNCHER_CORE_CLOCK_H_
#define CRUNCHER_CORE_CLOCK_H_

#include <chrono>
#include <cstdint>
#include <stop_token>
#include <string>

namespace cruncher {

using Millis = std::int64_t;  // milliseconds since the Unix epoch

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Millis NowMillis() const = 0;

  // Blocks until NowMillis() >= `deadline` or until `stop` is requested,
  // whichever comes first. Returns false if the stop ended the wait (also
  // when it was requested before the call), true otherwise.
  virtual bool SleepUntil(Millis deadline,
                          const std::stop_token& stop) const = 0;

  // SleepUntil(NowMillis() + duration, stop).
  bool SleepFor(Millis duration, const std::stop_token& stop) const {
    return SleepUntil(NowMillis() + duration, stop);
  }
};

// Wall-clock time; durable records (queue, jobs) store it.
class SystemClock final : public Clock {
 public:
  Millis NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  // Re-reads the wall clock after each wake-up, so a clock step is obeyed.
  bool SleepUntil(Millis deadline, const std::stop_token& stop) const override;
  static SystemClock& Get() {
    static SystemClock clock;
    return clock;
  }
};

// RFC 3339 UTC with second precision, as Kubernetes prints timestamps.
std::string FormatRfc3339(Millis t);

// "5s", "3m", "2h", "4d": the short age format kubectl prints.
std::string FormatAge(Millis age);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_CLOCK_H_
