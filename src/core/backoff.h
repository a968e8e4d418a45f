// Pure retry policies: exponential backoff and a token bucket.
//
// Neither reads a clock; callers pass `now` (milliseconds), which makes them
// deterministic under test (after watchman's RecrawlBackoff and client-go's
// workqueue rate limiters).
//
// Thread-safety: not synchronized; guard with the owner's lock.
#ifndef CRUNCHER_CORE_BACKOFF_H_
#define CRUNCHER_CORE_BACKOFF_H_

#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>

#include "core/clock.h"

namespace cruncher {

// delay(n) = min(cap, base * 2^(n-1)) for the n-th consecutive failure (n≥1);
// delay(0) = 0. The Job controller's pod backoff is base 10 s, cap 6 min.
struct ExponentialBackoff {
  Millis base = 10'000;
  Millis cap = 360'000;
  Millis Delay(int failures) const;
  // A copy with base and cap multiplied by `factor` (demos and tests run the
  // same policy faster).
  ExponentialBackoff Scaled(double factor) const;
};

// Per-item failure counts with exponential backoff (a workqueue's
// ItemExponentialFailureRateLimiter), bounded: callers Forget an item on
// every terminal outcome, and items they never hear of again (a message the
// queue's redrive moved to its DLQ) are evicted, least recently failed
// first, once `capacity` items are tracked. An evicted item that fails again
// starts over at the base delay: a shorter backoff, never a lost item.
class ItemBackoff {
 public:
  static constexpr std::size_t kDefaultCapacity = 10'000;

  explicit ItemBackoff(ExponentialBackoff policy,
                       std::size_t capacity = kDefaultCapacity);
  // Records a failure of `item`; returns how long to wait before retrying.
  Millis Failure(const std::string& item);
  void Forget(const std::string& item);
  int Failures(const std::string& item) const;
  // Items with a failure count.
  std::size_t size() const { return items_.size(); }

 private:
  struct Entry {
    int failures = 0;
    std::list<std::string>::iterator order;
  };
  ExponentialBackoff policy_;
  std::size_t capacity_;
  std::list<std::string> order_;  // least recently failed first
  std::unordered_map<std::string, Entry> items_;
};

// A token bucket: `rate` tokens per second, at most `burst` stored.
class TokenBucket {
 public:
  TokenBucket(double rate_per_second, double burst, Millis now);
  // Takes one token if available at `now`.
  bool TryTake(Millis now);
  // Whole tokens available at `now`.
  int Available(Millis now);
  // Takes `n` tokens (at most those available).
  void Take(int n, Millis now);
  // The earliest time at which one token will be available (≥ now).
  Millis NextAvailable(Millis now);

 private:
  void Refill(Millis now);
  double rate_;
  double burst_;
  double tokens_;
  Millis last_;
};

}  // namespace cruncher

#endif  // CRUNCHER_CORE_BACKOFF_H_
