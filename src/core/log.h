// Structured logging: one JSON object per line on stderr.
//
// {"ts":"2026-11-29T06:13:53.123Z","level":"warn","event":"poison_message",
//  "queue":"tasks","message_id":"...","reason":"..."}
// Events are short snake_case names; fields carry the context. Credentials
// and message bodies larger than a few KiB must not be passed as fields.
//
// Thread-safety: Log may be called from any thread; lines never interleave.
#ifndef CRUNCHER_CORE_LOG_H_
#define CRUNCHER_CORE_LOG_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace cruncher {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

void Log(LogLevel level, std::string_view event,
         nlohmann::json fields = nlohmann::json::object());

// Lines below `level` are dropped (default kInfo).
void SetLogLevel(LogLevel level);
// Replaces the destination (stderr by default); tests capture lines with it.
// Pass nullptr to restore stderr.
void SetLogSink(std::function<void(const std::string& line)> sink);

// Bounds repeated identical lines, e.g. a loop that meets the same error on
// every wake-up while the disk is full: the first occurrence is logged, then
// at most one per `interval`, carrying "suppressed": how many identical lines
// were dropped since the last one. Lines are identical when their event and
// fields are. It keeps at most kMaxKeys distinct lines in memory.
//
// Thread-safety: safe from any thread.
class LogLimiter {
 public:
  static constexpr size_t kMaxKeys = 256;
  explicit LogLimiter(Millis interval) : interval_(interval) {}

  // Logs the line unless an identical one was logged less than `interval`
  // before `now`.
  void Log(LogLevel level, std::string_view event, nlohmann::json fields,
           Millis now);

  // The decision alone (pure, given `now`): nullopt to drop the line with
  // `key`, or the number of lines with that key dropped since the last one
  // that passed.
  std::optional<int64_t> Admit(const std::string& key, Millis now);

 private:
  struct Seen {
    Millis logged_at = 0;
    int64_t suppressed = 0;
  };
  const Millis interval_;
  std::mutex mu_;
  std::map<std::string, Seen> seen_;  // guarded by mu_
};

}  // namespace cruncher

#endif  // CRUNCHER_CORE_LOG_H_
