#include "cli/common.h"

#include <gtest/gtest.h>

namespace cruncher::cli {
namespace {

constexpr Millis kDay = 86'400'000;

TEST(ParseDuration, ReadsUnitsAndSums) {
  EXPECT_EQ(*ParseDuration("0"), 0);
  EXPECT_EQ(*ParseDuration("250ms"), 250);
  EXPECT_EQ(*ParseDuration("90s"), 90'000);
  EXPECT_EQ(*ParseDuration("5m"), 300'000);
  EXPECT_EQ(*ParseDuration("2h"), 7'200'000);
  EXPECT_EQ(*ParseDuration("1d"), kDay);
  EXPECT_EQ(*ParseDuration("1h30m"), 5'400'000);
  EXPECT_EQ(*ParseDuration("1m1ms"), 60'001);
}

TEST(ParseDuration, RejectsWhatIsNotADuration) {
  for (const char* text : {"", "s", "10", "10x", "-5s", "+5s", " 5s", "5s ",
                           "5 s", "1h-1m", "5S", "1.5h", "ms", "1hh"}) {
    auto d = ParseDuration(text);
    ASSERT_FALSE(d.ok()) << text;
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(d.status().message().find("invalid duration"), std::string::npos)
        << d.status().message();
  }
}

TEST(ParseDuration, AcceptsUpToTheMaximum) {
  EXPECT_EQ(*ParseDuration(std::to_string(kMaxDurationDays) + "d"),
            kMaxDurationDays * kDay);
  EXPECT_EQ(*ParseDuration(std::to_string(kMaxDurationDays * kDay) + "ms"),
            kMaxDurationDays * kDay);
  EXPECT_EQ(*ParseDuration(std::to_string(kMaxDurationDays - 1) + "d24h"),
            kMaxDurationDays * kDay);
}

// The attack's values: products and sums past 64 bits used to wrap negative
// (gc then deleted every finished Job) and values past long long threw
// std::out_of_range out of stoll (abort).
TEST(ParseDuration, RejectsAnythingPastTheMaximumWithoutOverflow) {
  for (std::string text :
       {std::to_string(kMaxDurationDays + 1) + "d",
        std::to_string(kMaxDurationDays * kDay + 1) + "ms",
        std::to_string(kMaxDurationDays) + "d1ms",
        std::string("9223372036854776s"), std::string("9223372036854775807s"),
        std::string("9223372036854775808ms"),
        std::string("99999999999999999999s"),
        std::string("18446744073709551617d"), std::string(400, '9') + "s",
        std::to_string(kMaxDurationDays) + "d" +
            std::to_string(kMaxDurationDays) + "d"}) {
    auto d = ParseDuration(text);
    ASSERT_FALSE(d.ok()) << text << " gave " << (d.ok() ? *d : 0);
    EXPECT_EQ(d.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(d.status().message().find("longer than"), std::string::npos)
        << d.status().message();
  }
}

}  // namespace
}  // namespace cruncher::cli
