// Retry policy for AWS calls, modelled on the SDKs' "standard" retry mode:
// which errors are worth retrying, how long to back off (exponential with
// full jitter), and a client-wide retry budget (a token bucket that drains on
// retries and refills on successes, so that a struggling service is not
// hammered by every caller at once). Also the clock-skew detection that lets
// a client correct its signing time from the server's Date header.
//
// Everything here is policy: no clocks, no sleeping, no randomness of its
// own (the jitter sample is an argument).
//
// Thread-safety: the free functions are pure; RetryTokenBucket is internally
// synchronized and meant to be shared by all threads using one client.
#ifndef CRUNCHER_AWS_RETRY_H_
#define CRUNCHER_AWS_RETRY_H_

#include <mutex>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace cruncher::aws {

struct RetryPolicy {
  int max_attempts = 3;  // first try included
  Millis base_delay_ms = 50;
  Millis max_backoff_ms = 20000;
};

// What an error from one attempt means for the next.
enum class ErrorClass {
  kNonRetryable,
  kThrottling,  // the service asked us to slow down
  kTransient,   // 5xx, connection failure, timeout, request-timeout codes
  kClockSkew,   // our clock is off: correct it from Date and retry
};

// `code` is the service error code ("" if none), `http_status` 0 for a
// transport failure (no response).
ErrorClass ClassifyError(long http_status, std::string_view code,
                         std::string_view message);

bool IsThrottlingCode(std::string_view code);

// Delay before retry number `retry` (1 for the first retry): a uniform
// sample, `jitter` in [0, 1), of [0, min(max_backoff, base * 2^(retry-1))].
Millis BackoffDelay(const RetryPolicy& policy, int retry, double jitter);

// Maps an error to the StatusCode callers act on: QueueDoesNotExist ->
// NotFound, throttling -> Throttled, 5xx / transport -> Unavailable,
// validation errors -> InvalidArgument, auth errors -> FailedPrecondition.
StatusCode StatusCodeForError(long http_status, std::string_view code);

// The SDKs' retry quota: 500 tokens; a retry costs 5 (10 after a timeout);
// a success refunds what its retries took, or 1 when it needed none.
class RetryTokenBucket {
 public:
  static constexpr int kCapacity = 500;
  static constexpr int kRetryCost = 5;
  static constexpr int kTimeoutRetryCost = 10;
  static constexpr int kNoRetryIncrement = 1;

  explicit RetryTokenBucket(int capacity = kCapacity)
      : capacity_(capacity), tokens_(capacity) {}

  // Takes the cost of one retry; returns 0 (and takes nothing) when the
  // budget is exhausted, otherwise the amount taken.
  int Acquire(bool timed_out);

  // Called once per successful call with the tokens its retries took.
  void Release(int acquired);

  int tokens() const;

 private:
  const int capacity_;
  mutable std::mutex mu_;
  int tokens_;
};

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_RETRY_H_
