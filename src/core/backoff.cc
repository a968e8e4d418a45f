#include "core/backoff.h"

#include <algorithm>
#include <cmath>

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

Millis ItemBackoff::Failure(const std::string& item) {
  return policy_.Delay(++failures_[item]);
}

int ItemBackoff::Failures(const std::string& item) const {
  auto it = failures_.find(item);
  return it == failures_.end() ? 0 : it->second;
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
