// The dispatcher against the real local backends: LocalQueueStore (with a
// redrive policy) and LocalJobStore, no executor; Jobs are finished by hand
// through the store, time is a FakeClock shared by all three.
#include <gtest/gtest.h>

#include "core/job_name.h"
#include "core/log.h"
#include "dispatch/dispatcher.h"
#include "fakes/fake_clock.h"
#include "fakes/job_store_util.h"
#include "fakes/test_util.h"
#include "local/executor.h"
#include "local/job_store.h"
#include "local/queue_store.h"

namespace cruncher::dispatch {
namespace {

using cruncher::local::Durability;
using cruncher::local::LocalJobStore;
using cruncher::local::LocalMessageQueue;
using cruncher::local::LocalQueueStore;
using cruncher::local::QueueConfig;
using cruncher::local::RedrivePolicy;
using cruncher::testing::FakeClock;
using cruncher::testing::RecordFinished;
using cruncher::testing::RecordStarted;
using cruncher::testing::TempDir;

constexpr const char* kTemplate = R"yaml(
apiVersion: batch/v1
kind: Job
metadata:
  generateName: local-
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: worker
        image: busybox
        command: ["sh", "-c", "echo $msg; exit $code"]
)yaml";

class DispatcherLocalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetLogSink([](const std::string&) {});
    auto q = LocalQueueStore::Open(dir_.path(), Durability::kNormal, clock_);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    queues_ = std::move(q).value();
    auto j = LocalJobStore::Open(dir_.path(), Durability::kNormal, clock_);
    ASSERT_TRUE(j.ok()) << j.status().ToString();
    jobs_ = std::move(j).value();
    ASSERT_TRUE(queues_->CreateQueue("dlq", QueueConfig{}).ok());
    ASSERT_TRUE(queues_->CreateQueue("errors", QueueConfig{}).ok());
    QueueConfig config;
    config.redrive = RedrivePolicy{"dlq", 2};
    ASSERT_TRUE(queues_->CreateQueue("tasks", config).ok());
    source_ = std::make_unique<LocalMessageQueue>(*queues_, "tasks");
    errors_ = std::make_unique<LocalMessageQueue>(*queues_, "errors");
    auto t = JobTemplate::Parse(kTemplate, "job.yaml");
    ASSERT_TRUE(t.ok());
    template_ = std::make_unique<JobTemplate>(std::move(t).value());
  }
  void TearDown() override { SetLogSink(nullptr); }

  std::unique_ptr<Dispatcher> Make(AckStrategy ack) {
    DispatcherOptions o;
    o.ack = ack;
    o.wait_seconds = 0;
    o.visibility_seconds = 30;
    o.check_interval = 2'000;
    o.retry_backoff = {1'000, 60'000};
    return std::make_unique<Dispatcher>(*source_, errors_.get(), *jobs_,
                                        *template_, o, clock_);
  }

  int RunOnce(Dispatcher& d) {
    auto n = d.RunOnce();
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }

  std::string Send(const std::string& body) {
    auto id = queues_->Send("tasks", {body, {}, 0});
    EXPECT_TRUE(id.ok());
    return id.ok() ? *id : "";
  }

  // Runs attempt 1 of `job` to `exit_code`, as the executor would record it.
  void FinishJob(const std::string& job, int exit_code) {
    ASSERT_TRUE(RecordStarted(*jobs_, {{job, 1}}, clock_.NowMillis()).ok());
    ASSERT_TRUE(RecordFinished(*jobs_, {{job, 1, {exit_code, false}, false}},
                               clock_.NowMillis(), ExponentialBackoff{})
                    .ok());
  }

  long long Total(const std::string& queue) {
    auto d = queues_->Depth(queue);
    EXPECT_TRUE(d.ok());
    return d->visible + d->in_flight + d->delayed;
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<LocalQueueStore> queues_;
  std::unique_ptr<LocalJobStore> jobs_;
  std::unique_ptr<LocalMessageQueue> source_;
  std::unique_ptr<LocalMessageQueue> errors_;
  std::unique_ptr<JobTemplate> template_;
};

TEST_F(DispatcherLocalTest, OnCreateMakesTheJobAndDeletesTheMessage) {
  auto d = Make(AckStrategy::kOnCreate);
  std::string id = Send(R"({"msg": "hi", "code": 0})");
  EXPECT_EQ(RunOnce(*d), 1);
  auto job = jobs_->Get(JobNameFor("local-", "tasks", id));
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_EQ(job->task(), R"({"msg": "hi", "code": 0})");
  EXPECT_EQ(job->state(), JobState::kPending);
  EXPECT_EQ(Total("tasks"), 0);
  EXPECT_EQ(d->stats().acked, 1);
}

TEST_F(DispatcherLocalTest, RedeliveryMakesNoDuplicateJob) {
  auto d = Make(AckStrategy::kOnCreate);
  std::string id = Send(R"({"msg": "hi", "code": 0})");
  // A first delivery whose ack was lost.
  auto got = queues_->Receive("tasks", 1, 0, 30);
  ASSERT_EQ(got->size(), 1u);
  auto manifest = template_->RenderForMessage((*got)[0], "tasks");
  ASSERT_TRUE(jobs_->Create(*manifest).ok());
  clock_.Advance(30'000);
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().jobs_existing, 1);
  EXPECT_EQ(jobs_->List()->size(), 1u);
  EXPECT_EQ(Total("tasks"), 0);
}

TEST_F(DispatcherLocalTest, OnSuccessDeletesWhenTheJobCompletes) {
  auto d = Make(AckStrategy::kOnSuccess);
  std::string id = Send(R"({"msg": "hi", "code": 0})");
  EXPECT_EQ(RunOnce(*d), 1);
  std::string job = JobNameFor("local-", "tasks", id);
  EXPECT_EQ(queues_->Depth("tasks")->in_flight, 1);
  // Running for longer than the visibility timeout: the dispatcher extends.
  ASSERT_TRUE(RecordStarted(*jobs_, {{job, 1}}, clock_.NowMillis()).ok());
  for (int i = 0; i < 30; ++i) {
    clock_.Advance(2'000);
    EXPECT_EQ(RunOnce(*d), 0) << "redelivered while its Job ran, at step " << i;
  }
  EXPECT_EQ(queues_->Depth("tasks")->in_flight, 1);
  ASSERT_TRUE(RecordFinished(*jobs_, {{job, 1, {0, false}, false}},
                             clock_.NowMillis(), ExponentialBackoff{})
                  .ok());
  clock_.Advance(2'000);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_EQ(Total("tasks"), 0);
  EXPECT_EQ(Total("dlq"), 0);
  EXPECT_EQ(d->stats().acked, 1);
}

TEST_F(DispatcherLocalTest,
       OnSuccessFailedJobReachesTheDlqAfterMaxReceiveCount) {
  auto d = Make(AckStrategy::kOnSuccess);
  std::string id = Send(R"({"msg": "boom", "code": 1})");
  std::string job = JobNameFor("local-", "tasks", id);
  EXPECT_EQ(RunOnce(*d), 1);  // receive 1
  FinishJob(job, 1);
  ASSERT_EQ(jobs_->Get(job)->state(), JobState::kFailed);
  clock_.Advance(2'000);
  EXPECT_EQ(RunOnce(*d), 0);  // released with a 1 s backoff
  EXPECT_EQ(d->stats().released, 1);
  EXPECT_EQ(queues_->Depth("tasks")->in_flight, 1);
  clock_.Advance(1'000);
  EXPECT_EQ(RunOnce(*d), 1);  // receive 2: AlreadyExists, Job failed: released
  EXPECT_EQ(d->stats().jobs_existing, 1);
  EXPECT_EQ(d->stats().released, 2);
  clock_.Advance(60'000);
  EXPECT_EQ(RunOnce(*d), 0);  // receive 3 would exceed maxReceiveCount 2
  EXPECT_EQ(Total("tasks"), 0);
  auto dead = queues_->Peek("dlq", 10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].id, id);
  EXPECT_EQ((*dead)[0].body, R"({"msg": "boom", "code": 1})");
  EXPECT_EQ(jobs_->List()->size(), 1u);
  EXPECT_EQ(d->stats().acked, 0);
}

TEST_F(DispatcherLocalTest, PoisonGoesToTheDeadLetterQueueWithTheReason) {
  auto d = Make(AckStrategy::kOnCreate);
  std::string id = Send(R"({"msg": "no code"})");
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(Total("tasks"), 0);
  auto dead = queues_->Receive("errors", 10, 0, std::nullopt);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].body, R"({"msg": "no code"})");
  const auto& attrs = (*dead)[0].attributes;
  ASSERT_TRUE(attrs.count(kErrorAttribute));
  EXPECT_NE(attrs.at(kErrorAttribute).value.find("\"code\""), std::string::npos)
      << attrs.at(kErrorAttribute).value;
  EXPECT_EQ(attrs.at(kSourceMessageIdAttribute).value, id);
  EXPECT_TRUE(jobs_->List()->empty());
}

// The one poison_message log line of a test, parsed.
nlohmann::json PoisonLogLine(const std::vector<std::string>& lines) {
  nlohmann::json found;
  for (const auto& line : lines) {
    auto parsed = nlohmann::json::parse(line, nullptr, false);
    if (parsed.is_object() && parsed.value("event", "") == "poison_message") {
      EXPECT_TRUE(found.is_null()) << "a second poison_message line: " << line;
      found = parsed;
    }
  }
  EXPECT_TRUE(found.is_object()) << "no poison_message line";
  return found;
}

// Defect 12: the dead-letter copy of a body at the size limit plus its reason
// was over the limit, so the send failed and the queue's own redrive later
// moved the message without any reason. The body goes alone (nothing else
// fits beside it) and the reason is in the log with both message ids.
TEST_F(DispatcherLocalTest, PoisonBodyOfExactlyTheMaximumSizeKeepsItsReason) {
  std::vector<std::string> lines;
  SetLogSink([&lines](const std::string& line) { lines.push_back(line); });
  auto d = Make(AckStrategy::kOnCreate);
  const std::string body(local::kMaxMessageBytes, 'x');  // not JSON: poison
  std::string id = Send(body);
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().dead_lettered, 1);
  EXPECT_EQ(Total("tasks"), 0);
  auto dead = queues_->Peek("errors", 10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].body, body);
  EXPECT_TRUE((*dead)[0].attributes.empty());
  nlohmann::json logged = PoisonLogLine(lines);
  EXPECT_EQ(logged.value("level", ""), "error");
  EXPECT_EQ(logged.value("message_id", ""), id);
  EXPECT_EQ(logged.value("dead_letter_message_id", ""), (*dead)[0].id);
  EXPECT_EQ(logged.value("reason", ""), "message body is not valid JSON");
  EXPECT_EQ(logged.value("reason_attribute", ""),
            "omitted: the body or the message's own attributes leave no room");
}

// Near the limit the reason comes first: it goes whole, and the source
// attributes that no longer fit beside it are left off.
TEST_F(DispatcherLocalTest, PoisonNearTheSizeLimitKeepsTheReasonAttribute) {
  std::vector<std::string> lines;
  SetLogSink([&lines](const std::string& line) { lines.push_back(line); });
  auto d = Make(AckStrategy::kOnCreate);
  const std::string reason = "message body is not valid JSON";
  const size_t reason_attribute = std::string(kErrorAttribute).size() +
                                  std::string("String").size() + reason.size();
  const std::string body(local::kMaxMessageBytes - reason_attribute, 'x');
  std::string id = Send(body);
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(Total("tasks"), 0);
  auto dead = queues_->Peek("errors", 10);
  ASSERT_TRUE(dead.ok());
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].body, body);
  EXPECT_EQ((*dead)[0].attributes,
            (MessageAttributes{{kErrorAttribute, {"String", reason}}}));
  nlohmann::json logged = PoisonLogLine(lines);
  EXPECT_EQ(logged.value("message_id", ""), id);
  EXPECT_EQ(logged.value("reason_attribute", ""), "whole");
}

TEST_F(DispatcherLocalTest, BackendRejectionIsPoison) {
  // The local backend cannot run a Job without a command: InvalidArgument.
  auto t = JobTemplate::Parse(
      "kind: Job\nspec: {template: {spec: {containers: [{name: c, image: "
      "x}]}}}\n",
      "nocmd.yaml");
  ASSERT_TRUE(t.ok());
  DispatcherOptions o;
  o.wait_seconds = 0;
  Dispatcher d(*source_, errors_.get(), *jobs_, *t, o, clock_);
  Send(R"({"msg": "x", "code": 0})");
  EXPECT_EQ(RunOnce(d), 1);
  EXPECT_EQ(d.stats().poison, 1);
  EXPECT_EQ(d.stats().dead_lettered, 1);
  auto dead = queues_->Peek("errors", 10);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_NE((*dead)[0].attributes.at(kErrorAttribute).value.find("command"),
            std::string::npos);
  EXPECT_EQ(Total("tasks"), 0);
}

TEST_F(DispatcherLocalTest, BackpressureWithRealJobs) {
  DispatcherOptions o;
  o.wait_seconds = 0;
  o.max_active = 3;
  Dispatcher d(*source_, nullptr, *jobs_, *template_, o, clock_);
  for (int i = 0; i < 5; ++i) Send(R"({"msg": "x", "code": 0})");
  EXPECT_EQ(RunOnce(d), 3);
  EXPECT_EQ(RunOnce(d), 0);
  EXPECT_EQ(queues_->Depth("tasks")->visible, 2);
  auto list = jobs_->List();
  ASSERT_EQ(list->size(), 3u);
  FinishJob((*list)[0].name(), 0);
  EXPECT_EQ(RunOnce(d), 1);
  EXPECT_EQ(queues_->Depth("tasks")->visible, 1);
}

}  // namespace
}  // namespace cruncher::dispatch
