#include "aws/retry.h"

#include <algorithm>
#include <cmath>

namespace cruncher::aws {
namespace {

bool In(std::string_view code, std::initializer_list<std::string_view> set) {
  return std::find(set.begin(), set.end(), code) != set.end();
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

}  // namespace

bool IsThrottlingCode(std::string_view code) {
  return In(code, {"Throttling", "ThrottlingException", "ThrottledException",
                   "RequestThrottledException", "TooManyRequestsException",
                   "ProvisionedThroughputExceededException",
                   "TransactionInProgressException", "RequestLimitExceeded",
                   "BandwidthLimitExceeded", "LimitExceededException",
                   "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
                   "EC2ThrottledException"});
}

ErrorClass ClassifyError(long http_status, std::string_view code,
                         std::string_view message) {
  if (http_status == 0) return ErrorClass::kTransient;
  if (IsThrottlingCode(code) || http_status == 429) {
    return ErrorClass::kThrottling;
  }
  if (In(code,
         {"RequestTimeTooSkewed", "RequestExpired", "RequestInTheFuture"}) ||
      (In(code, {"InvalidSignatureException", "SignatureDoesNotMatch",
                 "AuthFailure"}) &&
       (Contains(message, "Signature expired") ||
        Contains(message, "Signature not yet current") ||
        Contains(message, "time") || Contains(message, "skew")))) {
    return ErrorClass::kClockSkew;
  }
  if (In(code, {"RequestTimeout", "RequestTimeoutException", "InternalError",
                "InternalFailure", "ServiceUnavailable"}) ||
      http_status == 500 || http_status == 502 || http_status == 503 ||
      http_status == 504) {
    return ErrorClass::kTransient;
  }
  return ErrorClass::kNonRetryable;
}

Millis BackoffDelay(const RetryPolicy& policy, int retry, double jitter) {
  const int exponent = std::clamp(retry - 1, 0, 40);
  const double ceiling = std::min(
      static_cast<double>(policy.max_backoff_ms),
      static_cast<double>(policy.base_delay_ms) * std::ldexp(1.0, exponent));
  return static_cast<Millis>(std::clamp(jitter, 0.0, 1.0) * ceiling);
}

StatusCode StatusCodeForError(long http_status, std::string_view code) {
  if (http_status == 0) return StatusCode::kUnavailable;
  if (In(code, {"QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
                "ResourceNotFoundException", "NoSuchEntity"})) {
    return StatusCode::kNotFound;
  }
  if (In(code, {"QueueAlreadyExists", "QueueNameExists",
                "AWS.SimpleQueueService.QueueNameExists"})) {
    return StatusCode::kAlreadyExists;
  }
  if (IsThrottlingCode(code) || http_status == 429 ||
      In(code,
         {"OverLimit", "AWS.SimpleQueueService.OverLimit", "KmsThrottled"})) {
    return StatusCode::kThrottled;
  }
  if (http_status >= 500) return StatusCode::kUnavailable;
  if (In(code, {"AccessDenied",
                "AccessDeniedException",
                "InvalidClientTokenId",
                "UnrecognizedClientException",
                "SignatureDoesNotMatch",
                "InvalidSignatureException",
                "IncompleteSignature",
                "MissingAuthenticationToken",
                "ExpiredToken",
                "ExpiredTokenException",
                "RequestExpired",
                "RequestTimeTooSkewed",
                "MessageNotInflight",
                "PurgeQueueInProgress",
                "QueueDeletedRecently",
                "AWS.SimpleQueueService.PurgeQueueInProgress",
                "AWS.SimpleQueueService.QueueDeletedRecently",
                "InvalidIdentityToken",
                "IDPRejectedClaim",
                "IDPCommunicationError",
                "RegionDisabledException"})) {
    return StatusCode::kFailedPrecondition;
  }
  if (In(code, {"RequestTimeout", "RequestTimeoutException"})) {
    return StatusCode::kUnavailable;
  }
  return StatusCode::kInvalidArgument;
}

int RetryTokenBucket::Acquire(bool timed_out) {
  const int cost = timed_out ? kTimeoutRetryCost : kRetryCost;
  std::lock_guard<std::mutex> lock(mu_);
  if (tokens_ < cost) return 0;
  tokens_ -= cost;
  return cost;
}

void RetryTokenBucket::Release(int acquired) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens_ = std::min(capacity_,
                     tokens_ + (acquired > 0 ? acquired : kNoRetryIncrement));
}

int RetryTokenBucket::tokens() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tokens_;
}

}  // namespace cruncher::aws
