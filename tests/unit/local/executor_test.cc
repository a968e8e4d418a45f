#include "local/executor.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/template.h"
#include "fakes/fake_clock.h"
#include "fakes/job_store_util.h"
#include "fakes/test_util.h"
#include "local/commit_faults.h"
#include "local/job_store.h"

extern char** environ;

namespace cruncher::local {
namespace {

using cruncher::testing::CommitFaults;
using cruncher::testing::FakeClock;
using cruncher::testing::ReadFile;
using cruncher::testing::RecordFinished;
using cruncher::testing::RecordStarted;
using cruncher::testing::TempDir;
using cruncher::testing::WaitFor;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using std::chrono::steady_clock;

json Manifest(const std::string& name, json command,
              json spec_extra = json::object(), json env = json()) {
  json container = {{"name", "c"}, {"image", "busybox"}, {"command", command}};
  if (!env.is_null()) container["env"] = env;
  json job = {
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata",
       {{"name", name},
        {"labels", {{"app.kubernetes.io/managed-by", "cruncher"}}}}},
      {"spec",
       {{"template",
         {{"spec",
           {{"restartPolicy", "Never"}, {"containers", {container}}}}}}}}};
  for (auto& [k, v] : spec_extra.items()) job["spec"][k] = v;
  return job;
}

// True if `pid` is gone or a zombie (its parent died and pid 1 has not
// reaped it yet): either way it no longer runs.
bool ProcessGone(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return true;
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  size_t paren = text.rfind(')');
  return paren != std::string::npos && paren + 2 < text.size() &&
         (text[paren + 2] == 'Z' || text[paren + 2] == 'X');
}

pid_t ReadPid(const std::string& path) {
  std::string text = ReadFile(path);
  return text.empty() ? -1 : static_cast<pid_t>(std::stol(text));
}

const ExecutorOptions kFast{
    .slots = 4, .backoff_scale = 0.001, .kill_grace = 200};

// Processes run in real time; the executor's timers (retry backoff,
// deadlines, kill grace, housekeeping, TTL) run on a FakeClock that moves
// only while a test waits for something (Eventually), kStep per poll.
class ExecutorTest : public ::testing::Test {
 protected:
  static constexpr Millis kStep = 20;

  ExecutorTest() { clock_.set_auto_advance(false); }

  void SetUp() override {
    auto s = LocalJobStore::Open(dir_.path(), Durability::kNormal, clock_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  void StartExecutor(ExecutorOptions options = kFast) {
    executor_ = std::make_unique<LocalExecutor>(*store_, options, clock_);
    ASSERT_TRUE(executor_->Start().ok());
  }

  // Polls `condition` until it holds (false after `timeout` of real time),
  // advancing the clock by kStep after each poll that fails.
  bool Eventually(const std::function<bool()>& condition,
                  seconds timeout = seconds(20)) {
    return WaitFor(
        [&] {
          if (condition()) return true;
          clock_.Advance(kStep);
          return false;
        },
        timeout);
  }

  void Create(const json& manifest) {
    Status s = store_->Create(manifest);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  // Waits (generously) until the Job is finished; returns it.
  Job WaitFinished(const std::string& name, seconds timeout = seconds(20)) {
    Job last;
    bool done = Eventually(
        [&] {
          auto job = store_->Get(name);
          if (!job.ok()) return false;
          last = *job;
          return job->finished();
        },
        timeout);
    EXPECT_TRUE(done) << name << " did not finish: " << last.json().dump();
    return last;
  }

  bool WaitState(const std::string& name, JobState state,
                 seconds timeout = seconds(20)) {
    return Eventually(
        [&] {
          auto job = store_->Get(name);
          return job.ok() && job->state() == state;
        },
        timeout);
  }

  std::vector<AttemptLog> Logs(const std::string& name) {
    auto logs = store_->Logs(name);
    EXPECT_TRUE(logs.ok()) << logs.status().ToString();
    return logs.ok() ? *logs : std::vector<AttemptLog>{};
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<LocalJobStore> store_;
  std::unique_ptr<LocalExecutor> executor_;  // destroyed before the store

  void TearDown() override { executor_.reset(); }
};

TEST_F(ExecutorTest, SuccessfulJobCompletes) {
  StartExecutor();
  Create(Manifest("ok", {"true"}));
  Job job = WaitFinished("ok");
  EXPECT_EQ(job.state(), JobState::kComplete);
  EXPECT_EQ(job.succeeded(), 1);
  EXPECT_EQ(job.failed(), 0);
  EXPECT_GT(job.completed_at(), 0);
  ASSERT_TRUE(job.json()["status"].contains("startTime"));
  auto logs = Logs("ok");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].attempt.find("exit code 0"), std::string::npos)
      << logs[0].attempt;
}

TEST_F(ExecutorTest, FailingJobRetriesThenFailsWithBackoffLimitExceeded) {
  StartExecutor();
  Create(Manifest("flaky", {"sh", "-c", "echo out; echo err >&2; exit 3"},
                  {{"backoffLimit", 2}}));
  Job job = WaitFinished("flaky");
  EXPECT_EQ(job.state(), JobState::kFailed);
  EXPECT_EQ(job.failed(), 3);  // backoffLimit + 1
  EXPECT_EQ(job.succeeded(), 0);
  ASSERT_TRUE(job.terminal_condition().has_value());
  EXPECT_EQ(job.terminal_condition()->reason, "BackoffLimitExceeded");
  auto logs = Logs("flaky");
  ASSERT_EQ(logs.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(logs[i].attempt.rfind("attempt-" + std::to_string(i + 1), 0), 0u)
        << logs[i].attempt;
    EXPECT_NE(logs[i].attempt.find("exit code 3"), std::string::npos);
    EXPECT_EQ(logs[i].output, "out\nerr\n");
    EXPECT_TRUE(std::filesystem::exists(store_->LogPath("flaky", i + 1)));
  }
}

TEST_F(ExecutorTest, FalseWithNoRetries) {
  StartExecutor();
  Create(Manifest("no", {"false"}, {{"backoffLimit", 0}}));
  Job job = WaitFinished("no");
  EXPECT_EQ(job.state(), JobState::kFailed);
  EXPECT_EQ(job.failed(), 1);
  EXPECT_EQ(Logs("no").size(), 1u);
}

TEST_F(ExecutorTest, EnvironmentAndEnvReferences) {
  StartExecutor();
  Create(Manifest("env",
                  {"sh", "-c",
                   "echo \"env=$GREETING arg=$1 job=$CRUNCHER_JOB_NAME "
                   "attempt=$CRUNCHER_ATTEMPT\"",
                   "sh", "$(NAME)", "$$(NAME)"},
                  json::object(),
                  {{{"name", "NAME"}, {"value", "world"}},
                   {{"name", "GREETING"}, {"value", "hello $(NAME)"}}}));
  Job job = WaitFinished("env");
  EXPECT_EQ(job.state(), JobState::kComplete);
  auto logs = Logs("env");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].output, "env=hello world arg=world job=env attempt=1\n");
}

// Issue 8, defect 15: the executor's credentials and settings do not reach
// tasks; they get the template's env and a minimal base (PATH, HOME, ...).
TEST_F(ExecutorTest, TasksGetOnlyTheTemplatesEnvAndAMinimalBase) {
  ::setenv("AWS_SECRET_ACCESS_KEY", "secret-of-the-server", 1);
  ::setenv("CRUNCHER_TEST_SETTING", "of-the-server", 1);
  StartExecutor();
  Create(Manifest("printenv", {"env"}, json::object(),
                  {{{"name", "FROM_TEMPLATE"}, {"value", "yes"}}}));
  Job job = WaitFinished("printenv");
  executor_->Stop();  // no thread reads the environment while it changes
  ::unsetenv("AWS_SECRET_ACCESS_KEY");
  ::unsetenv("CRUNCHER_TEST_SETTING");
  EXPECT_EQ(job.state(), JobState::kComplete);
  std::set<std::string> names;
  std::istringstream lines(Logs("printenv").at(0).output);
  for (std::string line; std::getline(lines, line);) {
    names.insert(line.substr(0, line.find('=')));
  }
  EXPECT_FALSE(names.contains("AWS_SECRET_ACCESS_KEY"));
  EXPECT_FALSE(names.contains("CRUNCHER_TEST_SETTING"));
  EXPECT_TRUE(names.contains("FROM_TEMPLATE"));
  EXPECT_TRUE(names.contains("PATH"));
  EXPECT_TRUE(names.contains("CRUNCHER_JOB_NAME"));
  for (const auto& name : names) {
    EXPECT_TRUE(name == "FROM_TEMPLATE" || name == "CRUNCHER_JOB_NAME" ||
                name == "CRUNCHER_ATTEMPT" || name == "PATH" ||
                name == "HOME" || name == "LANG" || name == "LC_ALL" ||
                name == "TZ" || name == "TMPDIR")
        << name;
  }
}

TEST_F(ExecutorTest, LiteralEnvReferenceIsPassedThrough) {
  StartExecutor();
  Create(Manifest("lit", {"echo", "$$(NAME)", "$(UNSET)"}, json::object(),
                  {{{"name", "NAME"}, {"value", "x"}}}));
  WaitFinished("lit");
  EXPECT_EQ(Logs("lit").at(0).output, "$(NAME) $(UNSET)\n");
}

// Defect 13: values with `$` reach the process as the message wrote them,
// not expanded against the template's env (its secret stays out of logs).
TEST_F(ExecutorTest, RenderedValuesReachTheProcessVerbatim) {
  auto t = JobTemplate::Parse(R"yaml(
kind: Job
metadata: {generateName: v-}
spec:
  backoffLimit: 0
  template:
    spec:
      containers:
      - name: c
        image: busybox
        # The template's own `$$` is a literal `$`, here for the shell.
        command: ["sh", "-c", 'printf "%s|%s|%s" "$$1" "$$V" "$$API_TOKEN"', sh]
        args: ["$v"]
        env:
        - {name: API_TOKEN, value: s3cret}
        - {name: V, value: "$v"}
)yaml",
                              "job.yaml");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  StartExecutor();
  int n = 0;
  for (const std::string v : {"a$$b", "$(API_TOKEN)", "$$(V) $"}) {
    Message m{
        "id-" + std::to_string(++n), json{{"v", v}}.dump(), "h", 1, 0, 0, {}};
    auto job = t->RenderForMessage(m, "tasks");
    ASSERT_TRUE(job.ok()) << job.status().ToString();
    Create(*job);
    std::string name = (*job)["metadata"]["name"];
    EXPECT_EQ(WaitFinished(name).state(), JobState::kComplete);
    EXPECT_EQ(Logs(name).at(0).output, v + "|" + v + "|s3cret");
  }
}

TEST_F(ExecutorTest, CommandNotFoundFailsWithTheReasonInTheLog) {
  StartExecutor();
  Create(Manifest("missing", {"cruncher-no-such-command-xyz", "arg"},
                  {{"backoffLimit", 1}}));
  Job job = WaitFinished("missing");
  EXPECT_EQ(job.state(), JobState::kFailed);
  EXPECT_EQ(job.failed(), 2);
  auto logs = Logs("missing");
  ASSERT_EQ(logs.size(), 2u);
  for (const auto& log : logs) {
    EXPECT_NE(log.attempt.find("exit code 127"), std::string::npos)
        << log.attempt;
    EXPECT_NE(log.output.find("cruncher-no-such-command-xyz"),
              std::string::npos)
        << log.output;
    EXPECT_NE(log.output.find("not found"), std::string::npos) << log.output;
  }
}

TEST_F(ExecutorTest, NotExecutableFileFailsWithTheReasonInTheLog) {
  std::string script = dir_.path() + "/not-executable.sh";
  std::ofstream(script) << "#!/bin/sh\necho hi\n";
  StartExecutor();
  Create(Manifest("noexec", {script}, {{"backoffLimit", 0}}));
  Job job = WaitFinished("noexec");
  EXPECT_EQ(job.state(), JobState::kFailed);
  auto logs = Logs("noexec");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].output.find("not-executable.sh"), std::string::npos)
      << logs[0].output;
}

TEST_F(ExecutorTest, ActiveDeadlineKillsTheAttempt) {
  StartExecutor();
  auto start = steady_clock::now();
  Create(Manifest("slow", {"sleep", "30"},
                  {{"activeDeadlineSeconds", 1}, {"backoffLimit", 6}}));
  Job job = WaitFinished("slow");
  auto elapsed = steady_clock::now() - start;
  EXPECT_EQ(job.state(), JobState::kFailed);
  ASSERT_TRUE(job.terminal_condition().has_value());
  EXPECT_EQ(job.terminal_condition()->reason, "DeadlineExceeded");
  EXPECT_EQ(job.failed(), 1);  // no retry after the deadline
  EXPECT_LT(elapsed, seconds(10));
  auto logs = Logs("slow");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].attempt.find("DeadlineExceeded"), std::string::npos)
      << logs[0].attempt;
  EXPECT_EQ(executor_->running(), 0);
}

TEST_F(ExecutorTest, DeadlineKillsProcessesThatIgnoreSigterm) {
  StartExecutor();
  auto start = steady_clock::now();
  Create(Manifest("stubborn",
                  {"sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"},
                  {{"activeDeadlineSeconds", 1}}));
  Job job = WaitFinished("stubborn");
  EXPECT_EQ(job.terminal_condition()->reason, "DeadlineExceeded");
  EXPECT_LT(steady_clock::now() - start, seconds(10));
}

TEST_F(ExecutorTest, SlotsLimitConcurrency) {
  StartExecutor({.slots = 3, .backoff_scale = 0.001, .kill_grace = 200});
  auto start = steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    Create(Manifest("sleep-" + std::to_string(i), {"sleep", "0.3"}));
  }
  int max_running = 0;
  bool all_done = Eventually(
      [&] {
        max_running = std::max(max_running, executor_->running());
        auto n = store_->CountUnfinished();
        return n.ok() && *n == 0;
      },
      seconds(30));
  auto elapsed = steady_clock::now() - start;
  ASSERT_TRUE(all_done);
  EXPECT_LE(max_running, 3);
  EXPECT_GE(max_running, 1);
  // Ten 0.3 s jobs three at a time take at least four rounds.
  EXPECT_GE(elapsed, milliseconds(1'150));
  auto jobs = store_->List();
  ASSERT_TRUE(jobs.ok());
  ASSERT_EQ(jobs->size(), 10u);
  for (const auto& job : *jobs) EXPECT_EQ(job.state(), JobState::kComplete);
}

TEST_F(ExecutorTest, DeletingARunningJobStopsItsProcess) {
  StartExecutor();
  std::string pidfile = dir_.path() + "/pid";
  // "$$$$": like the kubelet, the executor reduces $$ to $, so the shell
  // sees "echo $$".
  Create(Manifest("victim",
                  {"sh", "-c", "echo $$$$ > " + pidfile + "; exec sleep 30"}));
  ASSERT_TRUE(Eventually([&] { return ReadFile(pidfile).size() > 1; }));
  ASSERT_TRUE(WaitState("victim", JobState::kRunning));
  pid_t pid = ReadPid(pidfile);
  ASSERT_GT(pid, 0);
  EXPECT_FALSE(ProcessGone(pid));
  ASSERT_TRUE(store_->Delete("victim").ok());
  EXPECT_TRUE(Eventually([&] { return ProcessGone(pid); }, seconds(10)))
      << "the deleted Job's process is still running";
  EXPECT_TRUE(
      Eventually([&] { return executor_->running() == 0; }, seconds(10)));
  EXPECT_EQ(store_->Get("victim").status().code(), StatusCode::kNotFound);
}

TEST_F(ExecutorTest, TtlZeroDeletesTheFinishedJob) {
  StartExecutor();
  Create(Manifest("short-lived", {"true"}, {{"ttlSecondsAfterFinished", 0}}));
  EXPECT_TRUE(Eventually(
      [&] {
        return store_->Get("short-lived").status().code() ==
               StatusCode::kNotFound;
      },
      seconds(15)));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/logs/short-lived"));
}

TEST_F(ExecutorTest, StopRecordsRunningAttemptsAsInterruptedAndStartReruns) {
  StartExecutor();
  Create(Manifest("long", {"sleep", "30"}));
  ASSERT_TRUE(WaitState("long", JobState::kRunning));
  executor_->Stop();
  auto job = store_->Get("long");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), JobState::kPending);
  EXPECT_EQ(job->failed(), 0);
  auto logs = Logs("long");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].attempt.find("ExecutorRestarted"), std::string::npos);
  StartExecutor();
  ASSERT_TRUE(Eventually([&] { return Logs("long").size() == 2; }));
  ASSERT_TRUE(WaitState("long", JobState::kRunning));
  EXPECT_EQ(store_->Get("long")->failed(), 0);
}

// A crash leaves running=1 behind with no process: simulated here by
// recording the start through a second connection, as a dead executor would
// have.
TEST_F(ExecutorTest, RestartRecoversAnAttemptLeftRunning) {
  Create(Manifest("crashed", {"sh", "-c", "echo attempt $CRUNCHER_ATTEMPT"}));
  {
    auto other = LocalJobStore::Open(dir_.path(), Durability::kNormal);
    ASSERT_TRUE(other.ok());
    ASSERT_TRUE(
        RecordStarted(**other, {{"crashed", 1}}, clock_.NowMillis()).ok());
  }
  ASSERT_EQ(store_->Get("crashed")->state(), JobState::kRunning);
  StartExecutor();
  Job job = WaitFinished("crashed");
  EXPECT_EQ(job.state(), JobState::kComplete);
  EXPECT_EQ(job.failed(), 0);  // the interrupted attempt does not count
  auto logs = Logs("crashed");
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_NE(logs[0].attempt.find("ExecutorRestarted"), std::string::npos)
      << logs[0].attempt;
  EXPECT_EQ(logs[1].output, "attempt 2\n");
}

// The executor runs in another process that is killed with SIGKILL: its
// attempt dies with it (parent-death signal), and the next executor records
// the attempt as interrupted and runs it again.
TEST_F(ExecutorTest, ExecutorKilledWithSigkillAttemptDiesAndIsRerun) {
  std::string pidfile = dir_.path() + "/attempt.pid";
  Create(Manifest("survivor",
                  {"sh", "-c",
                   "echo $$$$ > " + pidfile +
                       "; echo attempt $CRUNCHER_ATTEMPT; exec sleep 30"}));
  std::vector<std::string> args = {CRUNCHER_EXECUTOR_HELPER, dir_.path()};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t helper = -1;
  ASSERT_EQ(
      ::posix_spawn(&helper, argv[0], nullptr, nullptr, argv.data(), environ),
      0);
  bool running = Eventually([&] {
    auto job = store_->Get("survivor");
    return job.ok() && job->state() == JobState::kRunning &&
           ReadFile(pidfile).size() > 1;
  });
  if (!running) {
    ::kill(helper, SIGKILL);
    ::waitpid(helper, nullptr, 0);
    FAIL() << "the helper executor did not start the job";
  }
  pid_t attempt_pid = ReadPid(pidfile);
  ASSERT_GT(attempt_pid, 0);
  EXPECT_FALSE(ProcessGone(attempt_pid));
  ASSERT_EQ(::kill(helper, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(helper, &status, 0), helper);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(Eventually([&] { return ProcessGone(attempt_pid); }, seconds(10)))
      << "the attempt outlived its executor (PR_SET_PDEATHSIG)";

  // Nobody recorded the end of attempt 1.
  ASSERT_EQ(store_->Get("survivor")->state(), JobState::kRunning);
  ASSERT_TRUE(std::filesystem::remove(pidfile));
  StartExecutor();
  ASSERT_TRUE(Eventually([&] { return ReadFile(pidfile).size() > 1; }));
  auto logs = Logs("survivor");
  ASSERT_EQ(logs.size(), 2u);
  EXPECT_NE(logs[0].attempt.find("ExecutorRestarted"), std::string::npos)
      << logs[0].attempt;
  EXPECT_TRUE(Eventually(
      [&] { return Logs("survivor").at(1).output == "attempt 2\n"; }));
  auto job = store_->Get("survivor");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->failed(), 0);
  EXPECT_NE(ReadPid(pidfile), attempt_pid);
  pid_t second_pid = ReadPid(pidfile);
  executor_->Stop();  // kills the second attempt
  EXPECT_TRUE(ProcessGone(second_pid) ||
              Eventually([&] { return ProcessGone(second_pid); }, seconds(5)));
}

int CountConditions(const Job& job, const std::string& type) {
  int n = 0;
  for (const auto& c : job.json()["status"].value("conditions", json::array()))
    if (c.value("type", "") == type) ++n;
  return n;
}

// Tests in which the database fails chosen commits (issue 8, defects 3 and
// 17). Each task appends its attempt number to DIR/NAME.runs, so a second
// process for one attempt shows.
class ExecutorFaultTest : public ExecutorTest {
 protected:
  void SetUp() override {
    ExecutorTest::SetUp();
    faults_ = std::make_shared<CommitFaults>(SQLITE_FULL);
    SetFaultInjector(faults_);
    SetLogSink([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(log_mu_);
      log_.push_back(line);
    });
  }
  void TearDown() override {
    ExecutorTest::TearDown();  // stops the executor first
    SetFaultInjector(nullptr);
    SetLogSink(nullptr);
  }

  json Task(const std::string& name, int exit_code, json spec_extra = {}) {
    return Manifest(name,
                    {"sh", "-c",
                     "echo $CRUNCHER_ATTEMPT >> " + Runs(name) +
                         "; sleep 0.1; exit " + std::to_string(exit_code)},
                    spec_extra.is_null() ? json::object() : spec_extra);
  }
  std::string Runs(const std::string& name) {
    return dir_.path() + "/" + name + ".runs";
  }
  int LogLines(const std::string& event) {
    std::lock_guard<std::mutex> lock(log_mu_);
    return static_cast<int>(
        std::count_if(log_.begin(), log_.end(), [&](const std::string& l) {
          return l.find("\"" + event + "\"") != std::string::npos;
        }));
  }

  std::shared_ptr<CommitFaults> faults_;
  std::mutex log_mu_;
  std::vector<std::string> log_;
};

// The commit that records the start fails: the process runs on, the Job
// still looks due in the store, and it must not be started a second time.
TEST_F(ExecutorFaultTest, AStartThatCannotBeRecordedIsNotStartedAgain) {
  Create(Task("once", 0));
  faults_->FailNth(1);
  StartExecutor();
  Job job = WaitFinished("once");
  EXPECT_EQ(faults_->failed(), 1);
  EXPECT_EQ(job.state(), JobState::kComplete);
  EXPECT_EQ(job.succeeded(), 1);
  EXPECT_EQ(ReadFile(Runs("once")), "1\n");
  EXPECT_EQ(Logs("once").size(), 1u);
}

// The commit that records the exit fails: the result is kept and recorded
// on a later wake-up instead of leaving the Job Running forever.
TEST_F(ExecutorFaultTest, AFinishThatCannotBeRecordedIsRecordedLater) {
  Create(Task("late", 0));
  faults_->FailNth(2);  // 1 records the start
  StartExecutor();
  Job job = WaitFinished("late", seconds(10));
  EXPECT_EQ(faults_->failed(), 1);
  EXPECT_EQ(job.state(), JobState::kComplete);
  EXPECT_EQ(ReadFile(Runs("late")), "1\n");
  EXPECT_TRUE(Eventually([&] { return executor_->running() == 0; }));
}

// The disk is full for a while, then space returns: every Job ends in
// exactly one terminal condition, none is left Running, no attempt runs
// twice, and the repeated error is logged a bounded number of times.
TEST_F(ExecutorFaultTest, DiskFullThenSpaceReturns) {
  const int kJobs = 8;
  for (int i = 0; i < kJobs; ++i) {
    // Even Jobs succeed; odd ones fail twice (backoffLimit 1).
    Create(Task("job-" + std::to_string(i), i % 2, {{"backoffLimit", 1}}));
  }
  faults_->set_failing(true);
  StartExecutor({.slots = 3, .backoff_scale = 0.001, .kill_grace = 200});
  // The retries back off (100 ms, 200 ms, 400 ms, ...) while the first
  // attempts end; nothing new starts meanwhile.
  ASSERT_TRUE(Eventually(
      [&] { return faults_->failed() >= 4 && executor_->running() == 0; }));
  EXPECT_FALSE(std::filesystem::exists(Runs("job-3")));
  faults_->set_failing(false);
  ASSERT_TRUE(Eventually(
      [&] {
        auto n = store_->CountUnfinished();
        return n.ok() && *n == 0;
      },
      seconds(30)));
  for (int i = 0; i < kJobs; ++i) {
    std::string name = "job-" + std::to_string(i);
    SCOPED_TRACE(name);
    auto job = store_->Get(name);
    ASSERT_TRUE(job.ok());
    EXPECT_EQ(
        CountConditions(*job, "Complete") + CountConditions(*job, "Failed"), 1)
        << job->json().dump();
    if (i % 2 == 0) {
      EXPECT_EQ(job->state(), JobState::kComplete);
      EXPECT_EQ(ReadFile(Runs(name)), "1\n");
    } else {
      EXPECT_EQ(job->state(), JobState::kFailed);
      EXPECT_EQ(job->failed(), 2);
      EXPECT_EQ(ReadFile(Runs(name)), "1\n2\n");
    }
  }
  EXPECT_EQ(executor_->running(), 0);
  // Once, and at most once more per 10 s of the test.
  EXPECT_GE(LogLines("executor_record_failed"), 1);
  EXPECT_LE(LogLines("executor_record_failed"), 3);
  EXPECT_EQ(LogLines("executor_store_recovered"), 1);
}

// Finding 10: a task whose output (its log file) met a full disk failed
// with exit code 1 and an empty log, and nothing said why.
TEST_F(ExecutorTest, AFailedAttemptOnAFullLogDiskSaysSo) {
  ExecutorOptions options = kFast;
  options.filesystem_full = [](const std::string&) { return true; };
  StartExecutor(options);
  Create(Manifest("full", {"sh", "-c", "exit 1"}, {{"backoffLimit", 0}}));
  Create(Manifest("fine", {"true"}));
  Job job = WaitFinished("full");
  EXPECT_EQ(job.state(), JobState::kFailed);
  const std::string reason =
      "log: no space left on device at " + store_->LogPath("full", 1);
  ASSERT_TRUE(job.terminal_condition().has_value());
  EXPECT_EQ(job.terminal_condition()->reason, "BackoffLimitExceeded");
  EXPECT_NE(
      job.terminal_condition()->message.find("(last attempt: " + reason + ")"),
      std::string::npos)
      << job.terminal_condition()->message;
  auto logs = Logs("full");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_NE(logs[0].attempt.find("exit code 1, " + reason), std::string::npos)
      << logs[0].attempt;
  // A successful attempt is not the disk's concern.
  EXPECT_EQ(WaitFinished("fine").state(), JobState::kComplete);
  auto fine = Logs("fine");
  ASSERT_EQ(fine.size(), 1u);
  EXPECT_EQ(fine[0].attempt.find("no space"), std::string::npos)
      << fine[0].attempt;
}

TEST_F(ExecutorTest, InvalidOptions) {
  LocalExecutor executor(*store_, {.slots = 0});
  EXPECT_EQ(executor.Start().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace cruncher::local
