#include "core/status.h"

#include <gtest/gtest.h>

#include <memory>

namespace cruncher {
namespace {

TEST(StatusTest, Basics) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.code(), StatusCode::kOk);
  EXPECT_EQ(ok.ToString(), "OK");
  EXPECT_FALSE(ok.retryable());
  EXPECT_TRUE(Status::Ok().ok());

  Status nf = NotFound("queue q does not exist");
  EXPECT_FALSE(nf.ok());
  EXPECT_EQ(nf.code(), StatusCode::kNotFound);
  EXPECT_EQ(nf.ToString(), "NotFound: queue q does not exist");
  EXPECT_EQ(nf.WithContext("receive").ToString(),
            "NotFound: receive: queue q does not exist");
  EXPECT_TRUE(ok.WithContext("x").ok());
  EXPECT_EQ(ok.WithContext("x").message(), "");

  EXPECT_TRUE(Unavailable("x").retryable());
  EXPECT_TRUE(Throttled("x").retryable());
  EXPECT_FALSE(InvalidArgument("x").retryable());
  EXPECT_FALSE(AlreadyExists("x").retryable());
  EXPECT_FALSE(FailedPrecondition("x").retryable());
  EXPECT_FALSE(Internal("x").retryable());
  EXPECT_EQ(StatusCodeName(StatusCode::kAlreadyExists), "AlreadyExists");
  EXPECT_EQ(StatusCodeName(StatusCode::kThrottled), "Throttled");
}

TEST(ResultTest, ValueOrStatus) {
  Result<int> v = 5;
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, 5);
  EXPECT_TRUE(v.status().ok());

  Result<int> e = InvalidArgument("bad");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kInvalidArgument);

  // An OK status cannot stand for a missing value.
  Result<int> broken = Status::Ok();
  EXPECT_FALSE(broken.ok());
  EXPECT_EQ(broken.status().code(), StatusCode::kInternal);

  Result<std::unique_ptr<int>> moved = std::make_unique<int>(7);
  std::unique_ptr<int> p = std::move(moved).value();
  EXPECT_EQ(*p, 7);
}

Status Fails() { return Unavailable("down"); }
Result<int> Seven() { return 7; }
Result<int> NoInt() { return NotFound("none"); }

Status UsesReturnIfError(bool fail, int* reached) {
  if (fail) CRUNCHER_RETURN_IF_ERROR(Fails());
  CRUNCHER_RETURN_IF_ERROR(Status::Ok());
  *reached = 1;
  return Status::Ok();
}

Result<int> UsesAssignOrReturn(bool fail) {
  CRUNCHER_ASSIGN_OR_RETURN(int a, Seven());
  if (fail) {
    CRUNCHER_ASSIGN_OR_RETURN(int b, NoInt());
    return a + b;
  }
  return a + 1;
}

TEST(StatusMacrosTest, PropagateErrors) {
  int reached = 0;
  EXPECT_EQ(UsesReturnIfError(true, &reached).code(), StatusCode::kUnavailable);
  EXPECT_EQ(reached, 0);
  EXPECT_TRUE(UsesReturnIfError(false, &reached).ok());
  EXPECT_EQ(reached, 1);
  auto ok = UsesAssignOrReturn(false);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 8);
  auto err = UsesAssignOrReturn(true);
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace cruncher
