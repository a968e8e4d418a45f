#include "core/job.h"

#include <gtest/gtest.h>

namespace cruncher {
namespace {

using nlohmann::json;

json JobWithStatus(json status) {
  return {{"metadata",
           {{"name", "j"},
            {"creationTimestamp", "2024-01-01T00:00:00Z"},
            {"labels", {{"app.kubernetes.io/managed-by", "cruncher"}}},
            {"annotations", {{"task", "{\"a\": 1}"}}}}},
          {"status", std::move(status)}};
}

JobState StateOf(json status) {
  auto job = Job::FromJson(JobWithStatus(std::move(status)));
  EXPECT_TRUE(job.ok());
  return job->state();
}

json Cond(const std::string& type, const std::string& status = "True") {
  return {{"type", type}, {"status", status}};
}

TEST(JobTest, FromJsonNeedsAName) {
  EXPECT_FALSE(Job::FromJson(json::object()).ok());
  EXPECT_FALSE(Job::FromJson(json::array()).ok());
  EXPECT_FALSE(Job::FromJson({{"metadata", {{"name", 5}}}}).ok());
  auto job = Job::FromJson({{"metadata", {{"name", "x"}}}});
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->name(), "x");
  EXPECT_EQ(job->state(), JobState::kPending);
  EXPECT_FALSE(job->managed_by_cruncher());
  EXPECT_EQ(job->task(), "");
  EXPECT_EQ(job->failed(), 0);
}

TEST(JobTest, StateFromConditions) {
  EXPECT_EQ(StateOf(json::object()), JobState::kPending);
  EXPECT_EQ(StateOf({{"active", 1}}), JobState::kPending);  // not ready yet
  EXPECT_EQ(StateOf({{"active", 1}, {"ready", 1}}), JobState::kRunning);
  EXPECT_EQ(StateOf({{"ready", 0}}), JobState::kPending);
  EXPECT_EQ(StateOf({{"conditions", {Cond("Complete")}}}), JobState::kComplete);
  EXPECT_EQ(StateOf({{"conditions", {Cond("Failed")}}}), JobState::kFailed);
  // Early signals are not terminal.
  EXPECT_EQ(StateOf({{"conditions", {Cond("FailureTarget")}}, {"ready", 1}}),
            JobState::kRunning);
  EXPECT_EQ(StateOf({{"conditions", {Cond("FailureTarget")}}}),
            JobState::kPending);
  EXPECT_EQ(StateOf({{"conditions", {Cond("SuccessCriteriaMet")}}}),
            JobState::kPending);
  // A condition that is not True does not count.
  EXPECT_EQ(
      StateOf({{"conditions", {Cond("Complete", "False")}}, {"ready", 1}}),
      JobState::kRunning);
  EXPECT_EQ(StateOf({{"conditions", {Cond("FailureTarget"), Cond("Failed")}},
                     {"ready", 1}}),
            JobState::kFailed);
  EXPECT_EQ(
      StateOf({{"conditions", {Cond("SuccessCriteriaMet"), Cond("Complete")}}}),
      JobState::kComplete);
}

TEST(JobTest, FinishedAndTerminalCondition) {
  auto job = Job::FromJson(
      JobWithStatus({{"failed", 7},
                     {"conditions",
                      {{{"type", "Failed"},
                        {"status", "True"},
                        {"reason", "BackoffLimitExceeded"},
                        {"message", "too many"},
                        {"lastTransitionTime", "2024-01-01T00:01:40Z"}}}}}));
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE(job->finished());
  auto terminal = job->terminal_condition();
  ASSERT_TRUE(terminal.has_value());
  EXPECT_EQ(terminal->reason, "BackoffLimitExceeded");
  EXPECT_EQ(terminal->message, "too many");
  EXPECT_EQ(job->failed(), 7);
  EXPECT_EQ(job->completed_at(), 1'704'067'300'000);
}

TEST(JobTest, TimestampsParse) {
  EXPECT_EQ(ParseRfc3339("2024-01-01T00:00:00Z"), 1'704'067'200'000);
  EXPECT_EQ(ParseRfc3339("1970-01-01T00:00:01Z"), 1000);
  EXPECT_EQ(ParseRfc3339("garbage"), 0);
  EXPECT_EQ(ParseRfc3339(""), 0);
  EXPECT_EQ(ParseRfc3339(FormatRfc3339(1'767'225'600'000)), 1'767'225'600'000);
  EXPECT_EQ(FormatRfc3339(1'704'067'200'999), "2024-01-01T00:00:00Z");

  auto job =
      Job::FromJson(JobWithStatus({{"succeeded", 1},
                                   {"completionTime", "2024-01-01T00:00:30Z"},
                                   {"conditions", {Cond("Complete")}}}));
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->created_at(), 1'704'067'200'000);
  EXPECT_EQ(job->completed_at(), 1'704'067'230'000);
  EXPECT_EQ(job->succeeded(), 1);
}

TEST(JobTest, AccessorsReadLabelsAndAnnotations) {
  auto job = Job::FromJson(JobWithStatus(json::object()));
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE(job->managed_by_cruncher());
  EXPECT_EQ(job->task(), "{\"a\": 1}");
  EXPECT_EQ(job->annotation("absent"), "");
  EXPECT_EQ(job->label("absent"), "");
}

TEST(JobTest, StateNames) {
  EXPECT_EQ(JobStateName(JobState::kRunning), "Running");
  EXPECT_EQ(ParseJobState("pending"), JobState::kPending);
  EXPECT_EQ(ParseJobState("RUNNING"), JobState::kRunning);
  EXPECT_EQ(ParseJobState("Completed"), JobState::kComplete);
  EXPECT_EQ(ParseJobState("failed"), JobState::kFailed);
  EXPECT_EQ(ParseJobState("nope"), std::nullopt);
}

TEST(ClockTest, FormatAge) {
  EXPECT_EQ(FormatAge(-5), "0s");
  EXPECT_EQ(FormatAge(5'000), "5s");
  EXPECT_EQ(FormatAge(180'000), "3m");
  EXPECT_EQ(FormatAge(3 * 3600'000LL), "3h");
  EXPECT_EQ(FormatAge(4 * 86400'000LL), "4d");
}

}  // namespace
}  // namespace cruncher
