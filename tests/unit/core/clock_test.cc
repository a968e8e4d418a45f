#include "core/clock.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "fakes/fake_clock.h"

namespace cruncher {
namespace {

TEST(SystemClockTest, SleepReturnsTrueAtTheDeadline) {
  SystemClock& clock = SystemClock::Get();
  Millis start = clock.NowMillis();
  EXPECT_TRUE(clock.SleepFor(20, {}));
  EXPECT_GE(clock.NowMillis() - start, 20);
}

TEST(SystemClockTest, StopEndsALongSleepAtOnce) {
  std::stop_source stop;
  std::thread stopper([&] { stop.request_stop(); });
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(SystemClock::Get().SleepFor(600'000, stop.get_token()));
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
}

TEST(SystemClockTest, AStopRequestedBeforeTheCallReturnsFalse) {
  std::stop_source stop;
  stop.request_stop();
  EXPECT_FALSE(SystemClock::Get().SleepFor(600'000, stop.get_token()));
}

TEST(FakeClockTest, AutoAdvanceMovesTimeToTheDeadline) {
  testing::FakeClock clock(1000);
  EXPECT_TRUE(clock.SleepUntil(5000, {}));
  EXPECT_EQ(clock.NowMillis(), 5000);
  EXPECT_TRUE(clock.SleepUntil(10, {}));  // a past deadline: no change
  EXPECT_EQ(clock.NowMillis(), 5000);
}

TEST(FakeClockTest, ManualModeBlocksUntilAdvanced) {
  testing::FakeClock clock(0);
  clock.set_auto_advance(false);
  bool woke = false;
  std::thread sleeper([&] { woke = clock.SleepUntil(100, {}); });
  while (clock.sleepers() == 0) std::this_thread::yield();
  clock.Advance(50);
  EXPECT_EQ(clock.sleepers(), 1);  // not yet at its deadline
  clock.Advance(50);
  sleeper.join();
  EXPECT_TRUE(woke);
}

TEST(FakeClockTest, ManualModeSleepEndsOnStop) {
  testing::FakeClock clock(0);
  clock.set_auto_advance(false);
  std::stop_source stop;
  bool woke = true;
  std::thread sleeper([&] { woke = clock.SleepUntil(100, stop.get_token()); });
  while (clock.sleepers() == 0) std::this_thread::yield();
  stop.request_stop();
  sleeper.join();
  EXPECT_FALSE(woke);
  EXPECT_EQ(clock.NowMillis(), 0);
}

}  // namespace
}  // namespace cruncher
