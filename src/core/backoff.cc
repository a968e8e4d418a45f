#include "core/backoff.h"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace cruncher {

Millis ExponentialBackoff::Delay(int failures) const {
  if (failures <= 0) return 0;
  Millis delay = base;
  for (int i = 1; i < failures && delay < cap; ++i) delay *= 2;
  return std::min(delay, cap);
}

ExponentialBackoff ExponentialBackoff::Scaled(double factor) const {
  return {static_cast<Millis>(std::llround(static_cast<double>(base) * factor)),
          static_cast<Millis>(std::llround(static_cast<double>(cap) * factor))};
}

ItemBackoff::ItemBackoff(ExponentialBackoff policy, std::size_t capacity)
    : policy_(policy), capacity_(std::max<std::size_t>(1, capacity)) {}

Millis ItemBackoff::Failure(const std::string& item) {
  auto it = items_.find(item);
  if (it == items_.end()) {
    if (items_.size() >= capacity_) {
      items_.erase(order_.front());
      order_.pop_front();
    }
    order_.push_back(item);
    it = items_.emplace(item, Entry{0, std::prev(order_.end())}).first;
  } else {
    order_.splice(order_.end(), order_, it->second.order);
  }
  return policy_.Delay(++it->second.failures);
}

void ItemBackoff::Forget(const std::string& item) {
  auto it = items_.find(item);
  if (it == items_.end()) return;
  order_.erase(it->second.order);
  items_.erase(it);
}

int ItemBackoff::Failures(const std::string& item) const {
  auto it = items_.find(item);
  return it == items_.end() ? 0 : it->second.failures;
}

TokenBucket::TokenBucket(double rate_per_second, double burst, Millis now)
    : rate_(rate_per_second), burst_(burst), tokens_(burst), last_(now) {}

void TokenBucket::Refill(Millis now) {
  if (now > last_) {
    tokens_ = std::min(
        burst_, tokens_ + rate_ * static_cast<double>(now - last_) / 1000.0);
    last_ = now;
  }
}

bool TokenBucket::TryTake(Millis now) {
  Refill(now);
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

int TokenBucket::Available(Millis now) {
  Refill(now);
  return static_cast<int>(tokens_);
}

void TokenBucket::Take(int n, Millis now) {
  Refill(now);
  tokens_ = std::max(0.0, tokens_ - n);
}

Millis TokenBucket::NextAvailable(Millis now) {
  Refill(now);
  if (tokens_ >= 1.0 || rate_ <= 0) return now;
  return now + static_cast<Millis>(std::ceil((1.0 - tokens_) * 1000.0 / rate_));
}

}  // namespace cruncher
