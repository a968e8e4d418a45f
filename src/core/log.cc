#include "core/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace cruncher {
namespace {

std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::mutex g_mu;
std::function<void(const std::string&)> g_sink;  // guarded by g_mu

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

std::string Timestamp() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                now.time_since_epoch())
                .count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace

void Log(LogLevel level, std::string_view event, nlohmann::json fields) {
  if (level < g_level.load(std::memory_order_relaxed)) return;
  nlohmann::json line = {
      {"ts", Timestamp()}, {"level", LevelName(level)}, {"event", event}};
  if (fields.is_object()) {
    for (auto& [k, v] : fields.items()) line[k] = std::move(v);
  }
  std::string text =
      line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::lock_guard<std::mutex> lock(g_mu);
  if (g_sink) {
    g_sink(text);
  } else {
    text.push_back('\n');
    std::fwrite(text.data(), 1, text.size(), stderr);
  }
}

void SetLogLevel(LogLevel level) { g_level.store(level); }

void SetLogSink(std::function<void(const std::string&)> sink) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_sink = std::move(sink);
}

std::optional<int64_t> LogLimiter::Admit(const std::string& key, Millis now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = seen_.find(key);
  if (it != seen_.end() && now < it->second.logged_at + interval_) {
    ++it->second.suppressed;
    return std::nullopt;
  }
  if (it == seen_.end()) {
    if (seen_.size() >= kMaxKeys) {
      // Forget the lines whose window has passed: logging them again
      // immediately is what the limiter would do anyway. If all are recent,
      // forget everything rather than grow.
      std::erase_if(seen_, [&](const auto& entry) {
        return now >= entry.second.logged_at + interval_;
      });
      if (seen_.size() >= kMaxKeys) seen_.clear();
    }
    it = seen_.emplace(key, Seen{}).first;
  }
  int64_t suppressed = it->second.suppressed;
  it->second = Seen{now, 0};
  return suppressed;
}

void LogLimiter::Log(LogLevel level, std::string_view event,
                     nlohmann::json fields, Millis now) {
  std::string key(event);
  key += ' ';
  key += fields.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  auto suppressed = Admit(key, now);
  if (!suppressed) return;
  if (*suppressed > 0 && fields.is_object()) fields["suppressed"] = *suppressed;
  cruncher::Log(level, event, std::move(fields));
}

}  // namespace cruncher
