#include "core/clock.h"

#include <condition_variable>
#include <ctime>
#include <mutex>

namespace cruncher {

bool SystemClock::SleepUntil(Millis deadline,
                             const std::stop_token& stop) const {
  std::mutex mu;
  std::condition_variable_any cv;  // woken by `stop` only
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    if (stop.stop_requested()) return false;
    Millis left = deadline - NowMillis();
    if (left <= 0) return true;
    cv.wait_for(lock, stop, std::chrono::milliseconds(left),
                [] { return false; });
  }
}

std::string FormatRfc3339(Millis t) {
  std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string FormatAge(Millis age) {
  if (age < 0) age = 0;
  Millis s = age / 1000;
  if (s < 120) return std::to_string(s) + "s";
  if (s < 120 * 60) return std::to_string(s / 60) + "m";
  if (s < 48 * 3600) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

}  // namespace cruncher
