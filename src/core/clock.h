// Clock: the one source of "now" for code that has side effects.
//
// Policy code (backoff, rate limits) never calls a clock; it takes `now` as an
// argument. Loops that sleep take a Clock so tests can drive time.
//
// Thread-safety: implementations are safe to call from any thread.
#ifndef CRUNCHER_CORE_CLOCK_H_
#define CRUNCHER_CORE_CLOCK_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace cruncher {

using Millis = std::int64_t;  // milliseconds since the Unix epoch

class Clock {
 public:
  virtual ~Clock() = default;
  virtual Millis NowMillis() const = 0;
};

// Wall-clock time; durable records (queue, jobs) store it.
class SystemClock final : public Clock {
 public:
  Millis NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
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
