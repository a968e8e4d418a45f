#include "core/log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace cruncher {
namespace {

using nlohmann::json;

TEST(LogLimiterTest, FirstThenOnePerIntervalWithTheSuppressedCount) {
  LogLimiter limiter(10'000);
  EXPECT_EQ(limiter.Admit("disk full", 0), 0);
  for (Millis t = 100; t < 10'000; t += 100) {
    EXPECT_FALSE(limiter.Admit("disk full", t).has_value()) << t;
  }
  EXPECT_EQ(limiter.Admit("disk full", 10'000), 99);
  EXPECT_FALSE(limiter.Admit("disk full", 10'001).has_value());
  EXPECT_EQ(limiter.Admit("disk full", 25'000), 1);
}

TEST(LogLimiterTest, DifferentLinesAreLimitedSeparately) {
  LogLimiter limiter(1'000);
  EXPECT_EQ(limiter.Admit("a", 0), 0);
  EXPECT_EQ(limiter.Admit("b", 1), 0);
  EXPECT_FALSE(limiter.Admit("a", 2).has_value());
  EXPECT_FALSE(limiter.Admit("b", 3).has_value());
}

TEST(LogLimiterTest, MemoryStaysBoundedWithManyDistinctLines) {
  LogLimiter limiter(1'000);
  for (size_t i = 0; i < 10 * LogLimiter::kMaxKeys; ++i) {
    EXPECT_TRUE(limiter.Admit("line " + std::to_string(i), 0).has_value());
  }
  // Forgetting may let a recent line through again, never drop a new one.
  EXPECT_TRUE(limiter.Admit("new", 0).has_value());
}

TEST(LogLimiterTest, LogAddsTheSuppressedCountToTheLine) {
  std::vector<std::string> lines;
  SetLogSink([&](const std::string& line) { lines.push_back(line); });
  LogLimiter limiter(1'000);
  for (Millis t = 0; t <= 1'000; t += 10) {
    limiter.Log(LogLevel::kError, "record_failed", {{"error", "full"}}, t);
  }
  limiter.Log(LogLevel::kError, "record_failed", {{"error", "other"}}, 1'001);
  SetLogSink(nullptr);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_FALSE(json::parse(lines[0]).contains("suppressed"));
  EXPECT_EQ(json::parse(lines[1])["suppressed"], 99);
  EXPECT_EQ(json::parse(lines[2])["error"], "other");
}

}  // namespace
}  // namespace cruncher
