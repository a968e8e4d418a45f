#include "local/job_lifecycle.h"

#include <gtest/gtest.h>

#include "core/job.h"
#include "core/task.h"
#include "core/template.h"

namespace cruncher::local {
namespace {

using nlohmann::json;

json Manifest(json container, json spec_extra = json::object()) {
  json pod = {{"restartPolicy", "Never"},
              {"containers", json::array({container})}};
  json job = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata", {{"name", "j"}}},
              {"spec", {{"template", {{"spec", pod}}}}}};
  for (auto& [k, v] : spec_extra.items()) job["spec"][k] = v;
  return job;
}

LocalRunSpec MustSpec(const json& job) {
  auto spec = LocalRunSpec::FromJob(job);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  return spec.ok() ? *spec : LocalRunSpec{};
}

Job AsJob(const json& object) {
  auto job = Job::FromJson(object);
  EXPECT_TRUE(job.ok());
  return *job;
}

TEST(ExpandEnvReferencesTest, KubeletRules) {
  std::vector<std::pair<std::string, std::string>> env = {
      {"A", "alpha"}, {"B", "beta"}, {"A", "again"}};
  EXPECT_EQ(ExpandEnvReferences("$(B)", env), "beta");
  EXPECT_EQ(ExpandEnvReferences("x$(B)y$(B)", env), "xbetaybeta");
  EXPECT_EQ(ExpandEnvReferences("$(A)", env), "again");  // the last wins
  EXPECT_EQ(ExpandEnvReferences("$(UNKNOWN)", env), "$(UNKNOWN)");
  EXPECT_EQ(ExpandEnvReferences("$$(B)", env), "$(B)");
  // "Double $$ are reduced to a single $" (Kubernetes API reference).
  EXPECT_EQ(ExpandEnvReferences("$$$(B)", env), "$beta");
  EXPECT_EQ(ExpandEnvReferences("$$$$(B)", env), "$$(B)");
  EXPECT_EQ(ExpandEnvReferences("echo $$", env), "echo $");
  EXPECT_EQ(ExpandEnvReferences("$$$$ a$$b $$HOME", env), "$$ a$b $HOME");
  EXPECT_EQ(ExpandEnvReferences("$B ${B} $", env), "$B ${B} $");
  EXPECT_EQ(ExpandEnvReferences("$(B", env), "$(B");
  EXPECT_EQ(ExpandEnvReferences("", env), "");
  // An unknown reference is written back as it stands, without a rescan.
  EXPECT_EQ(ExpandEnvReferences("$(UN$$KNOWN) $$", env), "$(UN$$KNOWN) $");
  EXPECT_EQ(ExpandEnvReferences("$(X $(B)", env), "$(X $(B)");
  EXPECT_EQ(ExpandEnvReferences("$() $)", env), "$() $)");
}

// Defect 13: a rendered template's values survive the expansion verbatim,
// whatever `$` they hold, and the template's own references still work.
TEST(ExpandEnvReferencesTest, RenderedValuesArriveVerbatim) {
  auto t = JobTemplate::Parse(R"yaml(
kind: Job
spec:
  template:
    spec:
      containers:
      - name: c
        command: ["sh", "-c", "echo $v $(API_TOKEN) $$(API_TOKEN)", "$$$v"]
        args: ["$v", "x${v}y"]
        env:
        - {name: API_TOKEN, value: "s3cret"}
        - {name: V, value: "$v"}
        - {name: REF, value: "$(V)"}
)yaml",
                              "job.yaml");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  for (const std::string v :
       {"a$$b", "$(API_TOKEN)", "$$(API_TOKEN)", "(API_TOKEN)", "$", "$$",
        "$(V)", "$(", "$(API_TOKEN", ")", "a$b$(c)$$(d)$$$(e)", "plain"}) {
    SCOPED_TRACE(v);
    auto vars = TaskVariables::FromBody(json{{"v", v}}.dump());
    ASSERT_TRUE(vars.ok());
    auto job = t->Render(*vars);
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    LocalRunSpec spec = MustSpec(*job);
    EXPECT_EQ(spec.argv, (std::vector<std::string>{
                             "sh", "-c", "echo " + v + " s3cret $(API_TOKEN)",
                             "$" + v, v, "x" + v + "y"}));
    ASSERT_EQ(spec.env.size(), 3u);
    EXPECT_EQ(spec.env[0].second, "s3cret");
    EXPECT_EQ(spec.env[1].second, v);
    EXPECT_EQ(spec.env[2].second, v);  // through the template's $(V)
  }
}

TEST(LocalRunSpecTest, FromJob) {
  json job = Manifest({{"name", "c"},
                       {"image", "busybox"},
                       {"command", {"sh", "-c"}},
                       {"args", {"echo $(GREETING) $(NAME)", "$$(NAME)"}},
                       {"workingDir", "/tmp"},
                       {"env",
                        {{{"name", "NAME"}, {"value", "world"}},
                         {{"name", "GREETING"}, {"value", "hello $(NAME)"}},
                         {{"name", "EMPTY"}}}}},
                      {{"backoffLimit", 2},
                       {"activeDeadlineSeconds", 30},
                       {"ttlSecondsAfterFinished", 0},
                       {"completions", 1},
                       {"parallelism", 1}});
  LocalRunSpec spec = MustSpec(job);
  EXPECT_EQ(spec.argv, (std::vector<std::string>{
                           "sh", "-c", "echo hello world world", "$(NAME)"}));
  ASSERT_EQ(spec.env.size(), 3u);
  EXPECT_EQ(spec.env[1], std::make_pair(std::string("GREETING"),
                                        std::string("hello world")));
  EXPECT_EQ(spec.env[2].second, "");
  EXPECT_EQ(spec.working_dir, "/tmp");
  EXPECT_EQ(spec.backoff_limit, 2);
  EXPECT_EQ(spec.active_deadline_seconds, 30);
  EXPECT_EQ(spec.ttl_seconds_after_finished, 0);

  LocalRunSpec defaults =
      MustSpec(Manifest({{"name", "c"}, {"command", {"true"}}}));
  EXPECT_EQ(defaults.backoff_limit, kDefaultBackoffLimit);
  EXPECT_FALSE(defaults.active_deadline_seconds.has_value());
  EXPECT_FALSE(defaults.ttl_seconds_after_finished.has_value());
}

TEST(LocalRunSpecTest, RejectsWhatCannotRunLocally) {
  struct Case {
    json job;
    const char* field;
  };
  const Case cases[] = {
      {Manifest({{"name", "c"}, {"image", "busybox"}}), "command"},
      {Manifest({{"name", "c"}, {"command", json::array()}}), "command"},
      {Manifest({{"name", "c"}, {"args", {"x"}}}), "command"},
      {Manifest({{"name", "c"},
                 {"command", {"true"}},
                 {"env",
                  {{{"name", "SECRET"},
                    {"valueFrom", {{"secretKeyRef", {{"name", "s"}}}}}}}}}),
       "SECRET"},
      {Manifest({{"name", "c"}, {"command", {"true"}}}, {{"completions", 2}}),
       "completions"},
      {Manifest({{"name", "c"}, {"command", {"true"}}}, {{"parallelism", 3}}),
       "parallelism"},
      {Manifest({{"name", "c"}, {"command", {"sleep", 5}}}), "command"},
      {Manifest({{"name", "c"}, {"command", {"echo"}}, {"args", {"a", true}}}),
       "args"},
      {Manifest({{"name", "c"}, {"command", "echo hi"}}), "command"},
      {Manifest({{"name", "c"}, {"command", {"true"}}}, {{"backoffLimit", -1}}),
       "backoffLimit"},
      {Manifest({{"name", "c"}, {"command", {"true"}}},
                {{"backoffLimit", "3"}}),
       "backoffLimit"},
      {Manifest({{"name", "c"}, {"command", {"true"}}},
                {{"activeDeadlineSeconds", 0}}),
       "activeDeadlineSeconds"},
      {Manifest({{"name", "c"},
                 {"command", {"true"}},
                 {"env", {{{"name", "N"}, {"value", 5}}}}}),
       "N"},
      {{{"metadata", {{"name", "j"}}}}, "spec.template.spec"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.job.dump());
    auto spec = LocalRunSpec::FromJob(c.job);
    ASSERT_FALSE(spec.ok());
    EXPECT_EQ(spec.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(spec.status().message().find(c.field), std::string::npos)
        << spec.status().message();
  }
}

class LifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    job_ = Manifest({{"name", "c"}, {"command", {"false"}}},
                    {{"backoffLimit", 2}});
    InitializeJob(job_, kT0, "uid-1");
    spec_ = MustSpec(job_);
  }
  static constexpr Millis kT0 = 1'704'067'200'000;  // 2024-01-01T00:00:00Z
  json job_;
  LocalRunSpec spec_;
  ExponentialBackoff backoff_;  // 10 s, 20 s, ...
};

TEST_F(LifecycleTest, InitializeAndStart) {
  EXPECT_EQ(job_["metadata"]["uid"], "uid-1");
  EXPECT_EQ(job_["metadata"]["creationTimestamp"], "2024-01-01T00:00:00Z");
  EXPECT_EQ(AsJob(job_).state(), JobState::kPending);
  MarkAttemptStarted(job_, kT0 + 1'000);
  EXPECT_EQ(job_["status"]["startTime"], "2024-01-01T00:00:01Z");
  EXPECT_EQ(AsJob(job_).state(), JobState::kRunning);
  EXPECT_EQ(AsJob(job_).active(), 1);
  // The start time is the first attempt's.
  MarkAttemptStarted(job_, kT0 + 9'000);
  EXPECT_EQ(job_["status"]["startTime"], "2024-01-01T00:00:01Z");
}

TEST_F(LifecycleTest, BackoffSequenceThenBackoffLimitExceeded) {
  Millis now = kT0;
  std::vector<Millis> delays;
  for (int attempt = 1; attempt <= 3; ++attempt) {
    MarkAttemptStarted(job_, now);
    auto next = MarkAttemptFinished(job_, spec_, {1, false}, now, backoff_);
    if (attempt <= 2) {
      ASSERT_TRUE(next.has_value()) << attempt;
      delays.push_back(*next - now);
      EXPECT_EQ(AsJob(job_).state(), JobState::kPending);
      EXPECT_FALSE(AsJob(job_).finished());
      now = *next;
    } else {
      EXPECT_FALSE(next.has_value());
    }
  }
  EXPECT_EQ(delays, (std::vector<Millis>{10'000, 20'000}));
  Job job = AsJob(job_);
  EXPECT_EQ(job.state(), JobState::kFailed);
  EXPECT_EQ(job.failed(), 3);  // backoffLimit + 1
  EXPECT_EQ(job.active(), 0);
  auto terminal = job.terminal_condition();
  ASSERT_TRUE(terminal.has_value());
  EXPECT_EQ(terminal->reason, "BackoffLimitExceeded");
  // FailureTarget comes first, as the Job controller writes it.
  auto conds = job.conditions();
  ASSERT_EQ(conds.size(), 2u);
  EXPECT_EQ(conds[0].type, "FailureTarget");
  EXPECT_EQ(conds[1].type, "Failed");
}

TEST_F(LifecycleTest, BackoffLimitZeroFailsAtOnce) {
  json job =
      Manifest({{"name", "c"}, {"command", {"false"}}}, {{"backoffLimit", 0}});
  InitializeJob(job, kT0, "u");
  MarkAttemptStarted(job, kT0);
  EXPECT_FALSE(
      MarkAttemptFinished(job, MustSpec(job), {2, false}, kT0, backoff_));
  EXPECT_EQ(AsJob(job).state(), JobState::kFailed);
  EXPECT_EQ(AsJob(job).failed(), 1);
}

TEST_F(LifecycleTest, ScaledBackoff) {
  MarkAttemptStarted(job_, kT0);
  auto next = MarkAttemptFinished(job_, spec_, {1, false}, kT0,
                                  ExponentialBackoff{}.Scaled(0.001));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, kT0 + 10);
}

TEST_F(LifecycleTest, SuccessAddsSuccessCriteriaMetAndComplete) {
  MarkAttemptStarted(job_, kT0);
  EXPECT_FALSE(
      MarkAttemptFinished(job_, spec_, {0, false}, kT0 + 5'000, backoff_));
  Job job = AsJob(job_);
  EXPECT_EQ(job.state(), JobState::kComplete);
  EXPECT_EQ(job.succeeded(), 1);
  EXPECT_EQ(job.failed(), 0);
  EXPECT_EQ(job.completed_at(), kT0 + 5'000);
  auto conds = job.conditions();
  ASSERT_EQ(conds.size(), 2u);
  EXPECT_EQ(conds[0].type, "SuccessCriteriaMet");
  EXPECT_EQ(conds[1].type, "Complete");
  EXPECT_EQ(conds[1].status, "True");
}

TEST_F(LifecycleTest, SuccessAfterAFailure) {
  MarkAttemptStarted(job_, kT0);
  ASSERT_TRUE(MarkAttemptFinished(job_, spec_, {1, false}, kT0, backoff_));
  MarkAttemptStarted(job_, kT0 + 10'000);
  EXPECT_FALSE(
      MarkAttemptFinished(job_, spec_, {0, false}, kT0 + 11'000, backoff_));
  Job job = AsJob(job_);
  EXPECT_EQ(job.state(), JobState::kComplete);
  EXPECT_EQ(job.failed(), 1);
  EXPECT_EQ(job.succeeded(), 1);
}

TEST_F(LifecycleTest, DeadlineExceededIsTerminalWhateverTheRetries) {
  MarkAttemptStarted(job_, kT0);
  EXPECT_FALSE(MarkAttemptFinished(job_, spec_, {128 + 15, true}, kT0 + 1'000,
                                   backoff_));
  Job job = AsJob(job_);
  EXPECT_EQ(job.state(), JobState::kFailed);
  EXPECT_EQ(job.terminal_condition()->reason, "DeadlineExceeded");
  EXPECT_EQ(job.failed(), 1);
}

TEST_F(LifecycleTest, InterruptedAttemptDoesNotCount) {
  MarkAttemptStarted(job_, kT0);
  MarkAttemptInterrupted(job_);
  Job job = AsJob(job_);
  EXPECT_EQ(job.state(), JobState::kPending);
  EXPECT_EQ(job.failed(), 0);
  EXPECT_EQ(job.active(), 0);
  EXPECT_TRUE(job.conditions().empty());
}

TEST_F(LifecycleTest, MarkFailed) {
  MarkFailed(job_, "DeadlineExceeded", "waited too long", kT0);
  Job job = AsJob(job_);
  EXPECT_EQ(job.state(), JobState::kFailed);
  EXPECT_EQ(job.terminal_condition()->message, "waited too long");
}

}  // namespace
}  // namespace cruncher::local
