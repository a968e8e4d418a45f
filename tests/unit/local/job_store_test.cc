#include "local/job_store.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "fakes/fake_clock.h"
#include "fakes/job_store_util.h"
#include "fakes/test_util.h"
#include "local/commit_faults.h"

namespace cruncher::local {
namespace {

using cruncher::testing::CommitFaults;
using cruncher::testing::FakeClock;
using cruncher::testing::RecordFinished;
using cruncher::testing::RecordStarted;
using cruncher::testing::TempDir;
using nlohmann::json;

json Manifest(const std::string& name, json command,
              json spec_extra = json::object()) {
  json job = {
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata",
       {{"name", name},
        {"labels", {{"app.kubernetes.io/managed-by", "cruncher"}}}}},
      {"spec",
       {{"template",
         {{"spec",
           {{"restartPolicy", "Never"},
            {"containers", {{{"name", "c"}, {"command", command}}}}}}}}}}};
  for (auto& [k, v] : spec_extra.items()) job["spec"][k] = v;
  return job;
}

class JobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = LocalJobStore::Open(dir_.path(), Durability::kNormal, clock_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }
  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<LocalJobStore> store_;
};

TEST_F(JobStoreTest, CreateGetListDelete) {
  ASSERT_TRUE(store_->Create(Manifest("a", {"true"})).ok());
  clock_.Advance(1'000);
  ASSERT_TRUE(store_->Create(Manifest("b", {"true"})).ok());
  auto dup = store_->Create(Manifest("a", {"false"}));
  EXPECT_EQ(dup.code(), StatusCode::kAlreadyExists);
  auto a = store_->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->state(), JobState::kPending);
  EXPECT_EQ(a->created_at(), clock_.NowMillis() - 1'000);
  EXPECT_FALSE(a->json()["metadata"]["uid"].get<std::string>().empty());
  EXPECT_EQ(a->json()["spec"]["template"]["spec"]["containers"][0]["command"],
            json({"true"}));  // the first create won
  auto list = store_->List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name(), "a");
  EXPECT_EQ((*list)[1].name(), "b");
  EXPECT_EQ(*store_->CountUnfinished(), 2);
  ASSERT_TRUE(store_->Delete("a").ok());
  EXPECT_EQ(store_->Get("a").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete("a").code(), StatusCode::kNotFound);
  EXPECT_EQ(store_->Logs("a").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*store_->CountUnfinished(), 1);
}

// Finding 4: jobs, status and gc --queue qb listed (and gc deleted) queue
// qa's Jobs; a store opened for one queue sees that queue's only, as the
// Kubernetes backend's label selector does.
TEST_F(JobStoreTest, AStoreOpenedForAQueueListsAndCountsOnlyItsJobs) {
  auto of_queue = [](const std::string& name, const std::string& label) {
    json m = Manifest(name, {"true"});
    m["metadata"]["labels"]["cruncher.dev/queue"] = label;
    return m;
  };
  ASSERT_TRUE(store_->Create(of_queue("a1", "qa")).ok());
  ASSERT_TRUE(store_->Create(of_queue("b1", "qb")).ok());
  ASSERT_TRUE(store_->Create(of_queue("a2", "qa")).ok());
  ASSERT_TRUE(store_->Create(Manifest("none", {"true"})).ok());
  auto qa = LocalJobStore::Open(dir_.path(), Durability::kNormal, clock_, "qa");
  ASSERT_TRUE(qa.ok()) << qa.status().ToString();
  auto names = [](LocalJobStore& store) {
    std::vector<std::string> out;
    auto list = store.List();
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    if (list.ok()) {
      for (const Job& j : *list) out.push_back(j.name());
    }
    return out;
  };
  EXPECT_EQ(names(**qa), (std::vector<std::string>{"a1", "a2"}));
  EXPECT_EQ(*(*qa)->CountUnfinished(), 2);
  auto qc = LocalJobStore::Open(dir_.path(), Durability::kNormal, clock_, "qc");
  ASSERT_TRUE(qc.ok());
  EXPECT_TRUE((*qc)->List()->empty());
  EXPECT_EQ(*(*qc)->CountUnfinished(), 0);
  // Unscoped (the executor's): every queue's.
  EXPECT_EQ(names(*store_),
            (std::vector<std::string>{"a1", "b1", "a2", "none"}));
  EXPECT_EQ(*store_->CountUnfinished(), 4);
}

TEST_F(JobStoreTest, CreateRejectsJobsThatCannotRunLocally) {
  json no_command = Manifest("x", {"true"});
  no_command["spec"]["template"]["spec"]["containers"][0].erase("command");
  auto s = store_->Create(no_command);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("command"), std::string::npos) << s.message();
  EXPECT_EQ(store_->Create(json::object()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(
      store_->Create(Manifest("y", {"true"}, {{"completions", 2}})).code(),
      StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->List()->empty());
}

TEST_F(JobStoreTest, AttemptBookkeepingWithBackoff) {
  ASSERT_TRUE(
      store_->Create(Manifest("j", {"false"}, {{"backoffLimit", 1}})).ok());
  Millis now = clock_.NowMillis();
  auto due = store_->DueJobs(now, 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].attempt, 1);
  EXPECT_EQ((*due)[0].started_at, 0);
  EXPECT_EQ((*due)[0].spec.argv, std::vector<std::string>{"false"});
  ASSERT_TRUE(RecordStarted(*store_, {{"j", 1}}, now).ok());
  EXPECT_EQ(store_->Get("j")->state(), JobState::kRunning);
  EXPECT_TRUE(store_->DueJobs(now, 10)->empty());  // running
  EXPECT_EQ(*store_->NextDueTime(), 0);
  ExponentialBackoff backoff{1'000, 10'000};
  ASSERT_TRUE(
      RecordFinished(*store_, {{"j", 1, {1, false}, false}}, now, backoff)
          .ok());
  EXPECT_EQ(store_->Get("j")->state(), JobState::kPending);
  EXPECT_EQ(store_->Get("j")->failed(), 1);
  EXPECT_EQ(*store_->NextDueTime(), now + 1'000);
  EXPECT_TRUE(store_->DueJobs(now + 999, 10)->empty());
  due = store_->DueJobs(now + 1'000, 10);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].attempt, 2);
  EXPECT_EQ((*due)[0].started_at, now);
  ASSERT_TRUE(RecordStarted(*store_, {{"j", 2}}, now + 1'000).ok());
  ASSERT_TRUE(RecordFinished(*store_, {{"j", 2, {1, false}, false}},
                             now + 2'000, backoff)
                  .ok());
  auto job = store_->Get("j");
  EXPECT_EQ(job->state(), JobState::kFailed);
  EXPECT_EQ(job->failed(), 2);
  EXPECT_EQ(*store_->CountUnfinished(), 0);
  auto logs = store_->Logs("j");
  ASSERT_TRUE(logs.ok());
  ASSERT_EQ(logs->size(), 2u);
  EXPECT_NE((*logs)[0].attempt.find("attempt-1"), std::string::npos);
  EXPECT_NE((*logs)[1].attempt.find("exit code 1"), std::string::npos);
}

TEST_F(JobStoreTest, RecoverInterruptedDoesNotCountTheAttempt) {
  ASSERT_TRUE(store_->Create(Manifest("j", {"sleep", "30"})).ok());
  ASSERT_TRUE(RecordStarted(*store_, {{"j", 1}}, clock_.NowMillis()).ok());
  auto recovered = store_->RecoverInterrupted(clock_.NowMillis());
  ASSERT_TRUE(recovered.ok());
  EXPECT_EQ(*recovered, std::vector<std::string>{"j"});
  auto job = store_->Get("j");
  EXPECT_EQ(job->state(), JobState::kPending);
  EXPECT_EQ(job->failed(), 0);
  auto due = store_->DueJobs(clock_.NowMillis(), 10);
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].attempt, 2);
  auto logs = store_->Logs("j");
  ASSERT_EQ(logs->size(), 1u);
  EXPECT_NE((*logs)[0].attempt.find("ExecutorRestarted"), std::string::npos)
      << (*logs)[0].attempt;
  EXPECT_TRUE(store_->RecoverInterrupted(clock_.NowMillis())->empty());
}

TEST_F(JobStoreTest, DeleteExpiredHonoursTtl) {
  ASSERT_TRUE(
      store_
          ->Create(Manifest("ttl", {"true"}, {{"ttlSecondsAfterFinished", 10}}))
          .ok());
  ASSERT_TRUE(store_->Create(Manifest("keep", {"true"})).ok());
  Millis now = clock_.NowMillis();
  ASSERT_TRUE(RecordStarted(*store_, {{"ttl", 1}, {"keep", 1}}, now).ok());
  ASSERT_TRUE(RecordFinished(*store_,
                             {{"ttl", 1, {0, false}, false},
                              {"keep", 1, {0, false}, false}},
                             now, ExponentialBackoff{})
                  .ok());
  EXPECT_EQ(*store_->DeleteExpired(now + 9'999), 0);
  EXPECT_EQ(*store_->DeleteExpired(now + 10'000), 1);
  EXPECT_EQ(store_->Get("ttl").status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(store_->Get("keep").ok());
}

TEST_F(JobStoreTest, FailPending) {
  ASSERT_TRUE(store_->Create(Manifest("j", {"true"})).ok());
  ASSERT_TRUE(
      store_->FailPending("j", "DeadlineExceeded", "late", clock_.NowMillis())
          .ok());
  auto job = store_->Get("j");
  EXPECT_EQ(job->state(), JobState::kFailed);
  EXPECT_EQ(job->terminal_condition()->reason, "DeadlineExceeded");
  EXPECT_TRUE(store_->DueJobs(clock_.NowMillis(), 10)->empty());
}

TEST_F(JobStoreTest, ExistingAndRecordsForDeletedJobsAreSkipped) {
  ASSERT_TRUE(store_->Create(Manifest("a", {"true"})).ok());
  auto existing = store_->Existing({"a", "b"});
  ASSERT_TRUE(existing.ok());
  EXPECT_EQ(*existing, std::vector<std::string>{"a"});
  EXPECT_TRUE(RecordStarted(*store_, {{"b", 1}}, clock_.NowMillis()).ok());
  EXPECT_TRUE(RecordFinished(*store_, {{"b", 1, {0, false}, false}},
                             clock_.NowMillis(), ExponentialBackoff{})
                  .ok());
}

int CountConditions(const Job& job, const std::string& type) {
  int n = 0;
  for (const auto& c : job.json()["status"].value("conditions", json::array()))
    if (c.value("type", "") == type) ++n;
  return n;
}

// An executor retries progress it could not record; progress that was
// recorded after all (or twice in one batch) must not apply twice: a second
// finish would add a second terminal condition (issue 8, defects 3 and 17).
TEST_F(JobStoreTest, ProgressRecordedTwiceAppliesOnce) {
  ASSERT_TRUE(store_->Create(Manifest("ok", {"true"})).ok());
  ASSERT_TRUE(
      store_->Create(Manifest("no", {"false"}, {{"backoffLimit", 0}})).ok());
  Millis now = clock_.NowMillis();
  using Started = LocalJobStore::Started;
  using Finished = LocalJobStore::Finished;
  std::vector<LocalJobStore::Progress> progress = {
      Started{"ok", 1, now}, Started{"no", 1, now},
      Finished{"ok", 1, {0, false}, false, now + 1},
      Finished{"no", 1, {1, false}, false, now + 1}};
  ASSERT_TRUE(store_->RecordProgress(progress, ExponentialBackoff{}).ok());
  ASSERT_TRUE(store_->RecordProgress(progress, ExponentialBackoff{}).ok());
  auto ok = store_->Get("ok");
  EXPECT_EQ(ok->state(), JobState::kComplete);
  EXPECT_EQ(ok->succeeded(), 1);
  EXPECT_EQ(CountConditions(*ok, "Complete"), 1);
  EXPECT_EQ(CountConditions(*ok, "Failed"), 0);
  auto no = store_->Get("no");
  EXPECT_EQ(no->state(), JobState::kFailed);
  EXPECT_EQ(no->failed(), 1);
  EXPECT_EQ(CountConditions(*no, "Failed"), 1);
  EXPECT_EQ(CountConditions(*no, "Complete"), 0);
  EXPECT_EQ(store_->Logs("ok")->size(), 1u);
}

// A start and the finish of the same attempt in one batch apply in order:
// the Job ends finished, not running.
TEST_F(JobStoreTest, StartAndFinishOfOneAttemptInOneBatch) {
  ASSERT_TRUE(store_->Create(Manifest("j", {"true"})).ok());
  Millis now = clock_.NowMillis();
  ASSERT_TRUE(store_
                  ->RecordProgress({LocalJobStore::Started{"j", 1, now},
                                    LocalJobStore::Finished{
                                        "j", 1, {0, false}, false, now + 5}},
                                   ExponentialBackoff{})
                  .ok());
  auto job = store_->Get("j");
  EXPECT_EQ(job->state(), JobState::kComplete);
  EXPECT_EQ(*store_->CountUnfinished(), 0);
}

TEST_F(JobStoreTest, FailPendingLeavesARunningOrFinishedJobAlone) {
  ASSERT_TRUE(store_->Create(Manifest("j", {"true"})).ok());
  ASSERT_TRUE(RecordStarted(*store_, {{"j", 1}}, clock_.NowMillis()).ok());
  ASSERT_TRUE(
      store_->FailPending("j", "DeadlineExceeded", "late", clock_.NowMillis())
          .ok());
  EXPECT_EQ(store_->Get("j")->state(), JobState::kRunning);
  ASSERT_TRUE(RecordFinished(*store_, {{"j", 1, {0, false}, false}},
                             clock_.NowMillis(), ExponentialBackoff{})
                  .ok());
  ASSERT_TRUE(
      store_->FailPending("j", "DeadlineExceeded", "late", clock_.NowMillis())
          .ok());
  auto job = store_->Get("j");
  EXPECT_EQ(job->state(), JobState::kComplete);
  EXPECT_EQ(CountConditions(*job, "Failed"), 0);
}

TEST_F(JobStoreTest, AnInjectedCommitFailureRecordsNothing) {
  ASSERT_TRUE(store_->Create(Manifest("j", {"true"})).ok());
  for (int rc : {SQLITE_FULL, SQLITE_BUSY, SQLITE_IOERR}) {
    SCOPED_TRACE(rc);
    auto faults = std::make_shared<CommitFaults>(rc);
    faults->set_failing(true);
    SetFaultInjector(faults);
    Status s = RecordStarted(*store_, {{"j", 1}}, clock_.NowMillis());
    SetFaultInjector(nullptr);
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.ToString();
    EXPECT_NE(s.ToString().find("cruncher.db"), std::string::npos)
        << s.ToString();
    EXPECT_EQ(faults->failed(), 1);
    EXPECT_EQ(store_->Get("j")->state(), JobState::kPending);
    EXPECT_TRUE(store_->Logs("j")->empty());
  }
  ASSERT_TRUE(RecordStarted(*store_, {{"j", 1}}, clock_.NowMillis()).ok());
  EXPECT_EQ(store_->Get("j")->state(), JobState::kRunning);
}

}  // namespace
}  // namespace cruncher::local
