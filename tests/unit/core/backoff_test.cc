#include "core/backoff.h"

#include <gtest/gtest.h>

namespace cruncher {
namespace {

TEST(ExponentialBackoffTest, ExactDelaysAndCap) {
  ExponentialBackoff b;  // 10 s, cap 6 min
  EXPECT_EQ(b.Delay(0), 0);
  EXPECT_EQ(b.Delay(-1), 0);
  EXPECT_EQ(b.Delay(1), 10'000);
  EXPECT_EQ(b.Delay(2), 20'000);
  EXPECT_EQ(b.Delay(3), 40'000);
  EXPECT_EQ(b.Delay(4), 80'000);
  EXPECT_EQ(b.Delay(5), 160'000);
  EXPECT_EQ(b.Delay(6), 320'000);
  EXPECT_EQ(b.Delay(7), 360'000);
  EXPECT_EQ(b.Delay(1000), 360'000);  // no overflow
  ExponentialBackoff custom{1'000, 5'000};
  EXPECT_EQ(custom.Delay(3), 4'000);
  EXPECT_EQ(custom.Delay(4), 5'000);
}

TEST(ExponentialBackoffTest, Scaled) {
  ExponentialBackoff b = ExponentialBackoff{}.Scaled(0.001);
  EXPECT_EQ(b.base, 10);
  EXPECT_EQ(b.cap, 360);
  EXPECT_EQ(b.Delay(2), 20);
  EXPECT_EQ(b.Delay(50), 360);
  ExponentialBackoff zero = ExponentialBackoff{}.Scaled(0);
  EXPECT_EQ(zero.Delay(5), 0);
  EXPECT_EQ(ExponentialBackoff{}.Scaled(0.1).Delay(1), 1'000);
}

TEST(ItemBackoffTest, PerItemAndForget) {
  ItemBackoff items(ExponentialBackoff{100, 1'000});
  EXPECT_EQ(items.Failures("a"), 0);
  EXPECT_EQ(items.Failure("a"), 100);
  EXPECT_EQ(items.Failure("a"), 200);
  EXPECT_EQ(items.Failure("b"), 100);  // independent
  EXPECT_EQ(items.Failure("a"), 400);
  EXPECT_EQ(items.Failures("a"), 3);
  items.Forget("a");
  EXPECT_EQ(items.Failures("a"), 0);
  EXPECT_EQ(items.Failure("a"), 100);
  EXPECT_EQ(items.Failures("b"), 1);
  for (int i = 0; i < 10; ++i) items.Failure("c");
  EXPECT_EQ(items.Failure("c"), 1'000);
}

TEST(ItemBackoffTest, CapacityEvictsTheLeastRecentlyFailedItem) {
  ItemBackoff items(ExponentialBackoff{100, 10'000}, 3);
  items.Failure("a");
  items.Failure("b");
  items.Failure("c");
  items.Failure("a");  // "a" is now the most recent; "b" the oldest
  EXPECT_EQ(items.size(), 3u);
  items.Failure("d");
  EXPECT_EQ(items.size(), 3u);
  EXPECT_EQ(items.Failures("b"), 0);  // evicted
  EXPECT_EQ(items.Failures("a"), 2);
  EXPECT_EQ(items.Failures("c"), 1);
  EXPECT_EQ(items.Failures("d"), 1);
  items.Forget("c");
  EXPECT_EQ(items.size(), 2u);
  items.Forget("never-failed");  // a no-op
  EXPECT_EQ(items.size(), 2u);
  // A long-running controller: a million ids that fail once and are never
  // heard of again stay within the bound.
  for (int i = 0; i < 1'000'000; ++i) items.Failure(std::to_string(i));
  EXPECT_EQ(items.size(), 3u);
  EXPECT_EQ(items.Failures("999999"), 1);
}

TEST(TokenBucketTest, BurstThenRefillAtRate) {
  const Millis t0 = 1'000'000;
  TokenBucket bucket(2.0, 3.0, t0);  // 2 per second, burst 3
  EXPECT_TRUE(bucket.TryTake(t0));
  EXPECT_TRUE(bucket.TryTake(t0));
  EXPECT_TRUE(bucket.TryTake(t0));
  EXPECT_FALSE(bucket.TryTake(t0));
  EXPECT_EQ(bucket.NextAvailable(t0), t0 + 500);
  EXPECT_FALSE(bucket.TryTake(t0 + 499));
  // 1 ms left, give or take the rounding of the fractional token.
  Millis next = bucket.NextAvailable(t0 + 499);
  EXPECT_GE(next, t0 + 500);
  EXPECT_LE(next, t0 + 501);
  EXPECT_TRUE(bucket.TryTake(t0 + 500));
  EXPECT_FALSE(bucket.TryTake(t0 + 500));
  // A long idle period refills only up to the burst.
  const Millis later = t0 + 100'000;
  EXPECT_EQ(bucket.NextAvailable(later), later);
  EXPECT_TRUE(bucket.TryTake(later));
  EXPECT_TRUE(bucket.TryTake(later));
  EXPECT_TRUE(bucket.TryTake(later));
  EXPECT_FALSE(bucket.TryTake(later));
  // Time going backwards adds nothing.
  EXPECT_FALSE(bucket.TryTake(t0));
}

TEST(TokenBucketTest, ATokenIsThereAtNextAvailable) {
  TokenBucket bucket(3.0, 1.0, 0);
  Millis now = 0;
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(bucket.TryTake(now)) << i;
    EXPECT_FALSE(bucket.TryTake(now));
    Millis next = bucket.NextAvailable(now);
    EXPECT_GT(next, now);
    EXPECT_LE(next, now + 335);  // 1/3 s, rounded up
    now = next;
  }
}

TEST(TokenBucketTest, ZeroRateNeverRefills) {
  TokenBucket bucket(0.0, 1.0, 0);
  EXPECT_TRUE(bucket.TryTake(0));
  EXPECT_FALSE(bucket.TryTake(1'000'000));
}

}  // namespace
}  // namespace cruncher

namespace cruncher {
namespace {

TEST(TokenBucketAvailableTest, CountsWholeTokensAndTakeSpendsThem) {
  TokenBucket bucket(/*rate_per_second=*/2, /*burst=*/5, /*now=*/0);
  EXPECT_EQ(bucket.Available(0), 5);
  bucket.Take(3, 0);
  EXPECT_EQ(bucket.Available(0), 2);
  bucket.Take(10, 0);  // never below zero
  EXPECT_EQ(bucket.Available(0), 0);
  EXPECT_EQ(bucket.Available(499), 0);
  EXPECT_EQ(bucket.Available(500), 1);
  EXPECT_EQ(bucket.Available(10'000), 5);  // capped at the burst
}

}  // namespace
}  // namespace cruncher
