#include "kube/encoding.h"

#include <gtest/gtest.h>

namespace cruncher::kube {
namespace {

TEST(DecodeBase64Field, IgnoresLineBreaksRejectsGarbage) {
  EXPECT_EQ(*DecodeBase64Field("aGVs\nbG8=\r\n"), "hello");
  for (const char* bad : {"aGVsbG8", "!!!!"}) {
    EXPECT_FALSE(DecodeBase64Field(bad).ok()) << bad;
  }
}

TEST(Rfc3339, ParsesZonesAndFractions) {
  EXPECT_EQ(*ParseRfc3339Time("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339Time("2026-01-01T00:00:00Z"), 1'767'225'600'000);
  EXPECT_EQ(*ParseRfc3339Time("2026-01-01T01:00:00+01:00"), 1'767'225'600'000);
  EXPECT_EQ(*ParseRfc3339Time("2025-12-31T23:30:00.5-00:30"),
            1'767'225'600'500);
  EXPECT_EQ(*ParseRfc3339Time("2024-02-29T12:00:00.123456789Z"),
            1'709'208'000'123);
  for (const char* bad :
       {"", "2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z",
        "2025-02-29T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00+0100", "2026-01-01T00:00:00Zjunk", "tomorrow"}) {
    EXPECT_FALSE(ParseRfc3339Time(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace cruncher::kube
