#include "aws/retry.h"

#include <gtest/gtest.h>

namespace cruncher::aws {
namespace {

TEST(RetryTest, ClassifiesErrors) {
  for (const char* code :
       {"RequestThrottled", "ThrottlingException", "Throttling",
        "RequestThrottledException", "TooManyRequestsException",
        "ProvisionedThroughputExceededException", "RequestLimitExceeded"}) {
    EXPECT_EQ(ClassifyError(400, code, ""), ErrorClass::kThrottling) << code;
    EXPECT_EQ(StatusCodeForError(400, code), StatusCode::kThrottled) << code;
  }
  EXPECT_EQ(ClassifyError(429, "", ""), ErrorClass::kThrottling);
  EXPECT_EQ(ClassifyError(0, "", ""), ErrorClass::kTransient);
  EXPECT_EQ(ClassifyError(500, "InternalError", ""), ErrorClass::kTransient);
  EXPECT_EQ(ClassifyError(503, "", ""), ErrorClass::kTransient);
  EXPECT_EQ(ClassifyError(400, "RequestTimeTooSkewed", ""),
            ErrorClass::kClockSkew);
  EXPECT_EQ(ClassifyError(400, "InvalidSignatureException",
                          "Signature expired: 20150830T123600Z is now earlier "
                          "than ..."),
            ErrorClass::kClockSkew);
  EXPECT_EQ(ClassifyError(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match"),
            ErrorClass::kNonRetryable);
  EXPECT_EQ(ClassifyError(400, "QueueDoesNotExist", ""),
            ErrorClass::kNonRetryable);
  EXPECT_EQ(ClassifyError(400, "InvalidParameterValue", ""),
            ErrorClass::kNonRetryable);
}

TEST(RetryTest, MapsStatusCodes) {
  EXPECT_EQ(StatusCodeForError(400, "QueueDoesNotExist"),
            StatusCode::kNotFound);
  EXPECT_EQ(StatusCodeForError(400, "AWS.SimpleQueueService.NonExistentQueue"),
            StatusCode::kNotFound);
  EXPECT_EQ(StatusCodeForError(400, "InvalidParameterValue"),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusCodeForError(400, "QueueNameExists"),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusCodeForError(503, ""), StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeForError(0, ""), StatusCode::kUnavailable);
  EXPECT_EQ(StatusCodeForError(403, "AccessDenied"),
            StatusCode::kFailedPrecondition);
}

TEST(RetryTest, BackoffIsExponentialWithFullJitterAndCapped) {
  RetryPolicy p;  // 50 ms base, 20 s cap
  EXPECT_EQ(BackoffDelay(p, 1, 0.0), 0);
  EXPECT_EQ(BackoffDelay(p, 1, 0.999999), 49);
  EXPECT_EQ(BackoffDelay(p, 2, 0.5), 50);
  EXPECT_EQ(BackoffDelay(p, 3, 0.5), 100);
  EXPECT_EQ(BackoffDelay(p, 30, 1.0), 20000);
  EXPECT_EQ(BackoffDelay(p, 1000, 0.5), 10000);
}

TEST(RetryTest, TokenBucketDrainsAndRefunds) {
  RetryTokenBucket bucket(20);
  EXPECT_EQ(bucket.Acquire(false), 5);
  EXPECT_EQ(bucket.Acquire(true), 10);
  EXPECT_EQ(bucket.Acquire(false), 5);
  EXPECT_EQ(bucket.tokens(), 0);
  EXPECT_EQ(bucket.Acquire(false), 0);  // budget exhausted
  bucket.Release(15);                   // a success after retries
  EXPECT_EQ(bucket.tokens(), 15);
  bucket.Release(0);  // a success without retries
  EXPECT_EQ(bucket.tokens(), 16);
  bucket.Release(100);
  EXPECT_EQ(bucket.tokens(), 20);  // never above capacity
}

}  // namespace
}  // namespace cruncher::aws
