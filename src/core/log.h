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

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace cruncher {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

void Log(LogLevel level, std::string_view event,
         nlohmann::json fields = nlohmann::json::object());

// Lines below `level` are dropped (default kInfo).
void SetLogLevel(LogLevel level);
// Replaces the destination (stderr by default); tests capture lines with it.
// Pass nullptr to restore stderr.
void SetLogSink(std::function<void(const std::string& line)> sink);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_LOG_H_
