#include "dispatch/dispatcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/job.h"
#include "core/job_name.h"
#include "core/log.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_job_backend.h"
#include "fakes/fake_message_queue.h"
#include "fakes/test_util.h"

namespace cruncher::dispatch {
namespace {

using cruncher::testing::FakeClock;
using cruncher::testing::FakeJobBackend;
using cruncher::testing::FakeMessageQueue;
using nlohmann::json;

constexpr const char* kTemplate = R"yaml(
apiVersion: batch/v1
kind: Job
metadata:
  generateName: work-
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: worker
        image: busybox
        command: ["echo", "$msg"]
)yaml";

// Captures log lines (and keeps test output quiet).
class LogCapture {
 public:
  LogCapture() {
    SetLogSink([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      lines_.push_back(line);
    });
  }
  ~LogCapture() { SetLogSink(nullptr); }
  bool Contains(const std::string& text) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& l : lines_) {
      if (l.find(text) != std::string::npos) return true;
    }
    return false;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

class DispatcherTest : public ::testing::Test {
 protected:
  DispatcherTest()
      : source_("tasks", clock_),
        dlq_("tasks-dlq", clock_),
        template_(JobTemplate::Parse(kTemplate, "job.yaml").value()) {}

  std::unique_ptr<Dispatcher> Make(DispatcherOptions options, bool with_dlq) {
    options.wait_seconds = 0;
    return std::make_unique<Dispatcher>(source_, with_dlq ? &dlq_ : nullptr,
                                        backend_, template_, options, clock_);
  }

  int RunOnce(Dispatcher& d) {
    auto n = d.RunOnce();
    EXPECT_TRUE(n.ok()) << n.status().ToString();
    return n.ok() ? *n : -1;
  }

  std::string JobFor(const std::string& message_id) {
    return JobNameFor(template_.name_prefix(), "tasks", message_id);
  }

  LogCapture logs_;
  FakeClock clock_;
  FakeMessageQueue source_;
  FakeMessageQueue dlq_;
  FakeJobBackend backend_;
  JobTemplate template_;
};

TEST_F(DispatcherTest, OnCreateCreatesTheJobThenDeletesTheMessage) {
  auto d = Make({}, false);
  std::string id = source_.Add(R"({"msg": "hello"})");
  EXPECT_EQ(RunOnce(*d), 1);
  auto job = backend_.Find(JobFor(id));
  ASSERT_TRUE(job.has_value());
  EXPECT_TRUE(job->managed_by_cruncher());
  EXPECT_EQ(job->task(), R"({"msg": "hello"})");
  EXPECT_EQ(job->annotation(kMessageIdAnnotation), id);
  EXPECT_EQ(job->json()["spec"]["template"]["spec"]["containers"][0]["command"],
            json({"echo", "hello"}));
  EXPECT_EQ(source_.size(), 0u);  // acked
  EXPECT_EQ(d->stats().received, 1);
  EXPECT_EQ(d->stats().jobs_created, 1);
  EXPECT_EQ(d->stats().acked, 1);
  EXPECT_EQ(d->stats().poison, 0);
  EXPECT_EQ(d->tracked(), 0u);
  // The source was asked for at most 10.
  ASSERT_FALSE(source_.receive_calls().empty());
  EXPECT_EQ(source_.receive_calls()[0].max_messages, 10);
  EXPECT_FALSE(source_.receive_calls()[0].visibility_seconds.has_value());
}

TEST_F(DispatcherTest, BatchOfMessagesMakesOneJobEach) {
  auto d = Make({}, false);
  for (int i = 0; i < 12; ++i)
    source_.Add(R"({"msg": ")" + std::to_string(i) + "\"}");
  EXPECT_EQ(RunOnce(*d), 10);
  EXPECT_EQ(RunOnce(*d), 2);
  EXPECT_EQ(backend_.size(), 12u);
  EXPECT_EQ(source_.size(), 0u);
  EXPECT_EQ(d->stats().acked, 12);
}

TEST_F(DispatcherTest, RedeliveryMeetsAlreadyExistsMakesNoDuplicateAndAcks) {
  auto d = Make({}, false);
  std::string id = source_.Add(R"({"msg": "once"})");
  // The first delivery's Job is created, but the ack is lost: the message
  // comes back after its visibility timeout.
  {
    auto got = source_.Receive(1, 0, std::nullopt, {});
    ASSERT_EQ(got->size(), 1u);
    auto manifest = template_.RenderForMessage((*got)[0], "tasks");
    ASSERT_TRUE(manifest.ok());
    ASSERT_TRUE(backend_.Create(*manifest).ok());
  }
  clock_.Advance(31'000);
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(backend_.size(), 1u);  // no duplicate
  EXPECT_EQ(backend_.create_calls(), 2);
  EXPECT_EQ(d->stats().jobs_existing, 1);
  EXPECT_EQ(d->stats().jobs_created, 0);
  EXPECT_EQ(d->stats().acked, 1);
  EXPECT_EQ(d->stats().poison, 0);
  EXPECT_FALSE(source_.Find(id).has_value());
}

TEST_F(DispatcherTest, JobOfTheSameNameNotOursIsPoison) {
  auto d = Make({}, true);
  std::string id = source_.Add(R"({"msg": "x"})");
  backend_.Put({{"metadata", {{"name", JobFor(id)}}}});  // no Cruncher label
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().poison, 1);
  EXPECT_EQ(d->stats().dead_lettered, 1);
  EXPECT_EQ(d->stats().acked, 0);
  ASSERT_EQ(dlq_.size(), 1u);
  const MessageAttributes attrs = dlq_.messages()[0].message.attributes;
  ASSERT_TRUE(attrs.count(kErrorAttribute));
  EXPECT_NE(attrs.at(kErrorAttribute).value.find("not created by Cruncher"),
            std::string::npos)
      << attrs.at(kErrorAttribute).value;
  EXPECT_EQ(source_.size(), 0u);
  // The foreign Job is untouched.
  EXPECT_FALSE(backend_.Find(JobFor(id))->managed_by_cruncher());
}

TEST_F(DispatcherTest, OurJobForAnotherMessageIdIsPoison) {
  auto d = Make({}, false);
  std::string id = source_.Add(R"({"msg": "x"})");
  backend_.Put(
      {{"metadata",
        {{"name", JobFor(id)},
         {"labels", {{std::string(kManagedByLabel), "cruncher"}}},
         {"annotations", {{std::string(kMessageIdAnnotation), "other"}}}}}});
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().poison, 1);
  EXPECT_EQ(d->stats().acked, 0);
  EXPECT_TRUE(source_.Find(id).has_value());  // no DLQ: left in the queue
}

struct PoisonCase {
  const char* name;
  const char* body;
  Status create_error;  // OK: none
  const char* reason;   // expected in the cruncher-error attribute
};

void PrintTo(const PoisonCase& c, std::ostream* os) { *os << c.name; }

class PoisonTest : public DispatcherTest,
                   public ::testing::WithParamInterface<PoisonCase> {};

TEST_P(PoisonTest, WithDeadLetterQueueSentThereWithTheReasonAndDeleted) {
  const PoisonCase& c = GetParam();
  auto d = Make({}, true);
  if (!c.create_error.ok()) backend_.QueueCreateError(c.create_error);
  OutgoingMessage m{c.body, {{"origin", {"String", "producer"}}}, 0};
  std::string id = source_.Send(m).value();
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().poison, 1);
  EXPECT_EQ(d->stats().dead_lettered, 1);
  EXPECT_EQ(d->stats().acked, 0);
  EXPECT_EQ(source_.size(), 0u);  // deleted from the source
  ASSERT_EQ(dlq_.size(), 1u);
  const Message dead = dlq_.messages()[0].message;
  EXPECT_EQ(dead.body, c.body);  // verbatim
  ASSERT_TRUE(dead.attributes.count(kErrorAttribute));
  EXPECT_NE(dead.attributes.at(kErrorAttribute).value.find(c.reason),
            std::string::npos)
      << dead.attributes.at(kErrorAttribute).value;
  EXPECT_EQ(dead.attributes.at(kSourceQueueAttribute).value, "tasks");
  EXPECT_EQ(dead.attributes.at(kSourceMessageIdAttribute).value, id);
  EXPECT_EQ(dead.attributes.at("origin").value, "producer");  // kept
  EXPECT_TRUE(logs_.Contains("poison_message"));
  // Only a Job the backend accepted would exist.
  EXPECT_EQ(backend_.size(), 0u);
}

TEST_P(PoisonTest, WithoutDeadLetterQueueLeftInTheQueueAndCounted) {
  const PoisonCase& c = GetParam();
  auto d = Make({}, false);
  if (!c.create_error.ok()) backend_.QueueCreateError(c.create_error);
  std::string id = source_.Add(c.body);
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().poison, 1);
  EXPECT_EQ(d->stats().dead_lettered, 0);
  EXPECT_TRUE(source_.deleted_handles().empty());
  ASSERT_TRUE(source_.Find(id).has_value());
  EXPECT_TRUE(logs_.Contains("poison_message"));
  // It comes back after its visibility timeout, for the queue's redrive.
  clock_.Advance(31'000);
  if (!c.create_error.ok()) backend_.QueueCreateError(c.create_error);
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(source_.Find(id)->message.receive_count, 2);
  EXPECT_EQ(d->stats().poison, 2);
}

// Issue 8, defect 10: this body crashed the process on every delivery.
const std::string kBodyNested100k =
    R"({"msg":)" + std::string(100000, '[') + std::string(100000, ']') + "}";

INSTANTIATE_TEST_SUITE_P(
    Reasons, PoisonTest,
    ::testing::Values(
        PoisonCase{"NotJson", "this is not json", Status(), "not valid JSON"},
        PoisonCase{"ArrayBody", "[1, 2, 3]", Status(), "JSON object"},
        PoisonCase{"MissingVariable", R"({"other": 1})", Status(), "msg"},
        PoisonCase{"NestedTooDeeply", kBodyNested100k.c_str(), Status(),
                   "message body: JSON is nested deeper than the limit of "
                   "128 levels"},
        PoisonCase{"BackendRejects", R"({"msg": "x"})",
                   InvalidArgument("Job.batch is invalid: spec.template"),
                   "Job.batch is invalid"}),
    [](const auto& test_info) { return std::string(test_info.param.name); });

TEST_F(DispatcherTest, DeadLetterSendFailureKeepsTheMessage) {
  auto d = Make({}, true);
  dlq_.set_send_error(Unavailable("dlq down"));
  std::string id = source_.Add("not json");
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().poison, 1);
  EXPECT_EQ(d->stats().dead_lettered, 0);
  EXPECT_TRUE(source_.Find(id).has_value());
  EXPECT_TRUE(source_.deleted_handles().empty());
}

TEST_F(DispatcherTest, TransientBackendErrorLeavesTheMessageWithBackoff) {
  DispatcherOptions options;
  options.retry_backoff = {1'000, 60'000};
  auto d = Make(options, true);
  backend_.QueueCreateError(Unavailable("apiserver: 503"));
  std::string id = source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().transient_errors, 1);
  EXPECT_EQ(d->stats().poison, 0);
  EXPECT_EQ(d->stats().acked, 0);
  EXPECT_TRUE(source_.deleted_handles().empty());
  EXPECT_EQ(dlq_.size(), 0u);
  ASSERT_EQ(source_.visibility_calls().size(), 1u);
  EXPECT_EQ(source_.visibility_calls()[0].seconds, 1);  // backoff 1 s
  // Fails again after it reappears: the backoff doubles.
  clock_.Advance(1'000);
  backend_.QueueCreateError(Throttled("429"));
  EXPECT_EQ(RunOnce(*d), 1);
  ASSERT_EQ(source_.visibility_calls().size(), 2u);
  EXPECT_EQ(source_.visibility_calls()[1].seconds, 2);
  EXPECT_EQ(d->stats().transient_errors, 2);
  // Then it works.
  clock_.Advance(2'000);
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(backend_.size(), 1u);
  EXPECT_FALSE(source_.Find(id).has_value());
  EXPECT_EQ(d->stats().acked, 1);
}

TEST_F(DispatcherTest, TransientErrorCheckingAnExistingJob) {
  auto d = Make({}, false);
  std::string id = source_.Add(R"({"msg": "x"})");
  backend_.QueueCreateError(AlreadyExists("exists"));
  backend_.set_get_error(Unavailable("timeout"));
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(d->stats().transient_errors, 1);
  EXPECT_TRUE(source_.Find(id).has_value());
}

TEST_F(DispatcherTest, ReceiveFailureIsReturned) {
  auto d = Make({}, false);
  source_.set_receive_error(Unavailable("network"));
  auto n = d->RunOnce();
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kUnavailable);
}

TEST_F(DispatcherTest, BackpressureStopsReceivingAtMaxActive) {
  DispatcherOptions options;
  options.max_active = 3;
  auto d = Make(options, false);
  for (int i = 0; i < 5; ++i) source_.Add(R"({"msg": "x"})");
  backend_.set_unfinished_override(3);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_TRUE(source_.receive_calls().empty());
  EXPECT_EQ(d->stats().received, 0);
  EXPECT_EQ(source_.size(), 5u);
  EXPECT_EQ(backend_.size(), 0u);
  backend_.set_unfinished_override(5);  // over the limit
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_TRUE(source_.receive_calls().empty());

  backend_.set_unfinished_override(1);
  EXPECT_EQ(RunOnce(*d), 2);
  ASSERT_EQ(source_.receive_calls().size(), 1u);
  EXPECT_EQ(source_.receive_calls()[0].max_messages, 2);
  EXPECT_EQ(backend_.size(), 2u);
  EXPECT_EQ(source_.size(), 3u);
}

TEST_F(DispatcherTest, CreateRateReceivesNoMoreThanTheTokens) {
  DispatcherOptions options;
  options.create_per_second = 2;  // burst of 10
  auto d = Make(options, false);
  for (int i = 0; i < 14; ++i) source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 10);  // the burst
  EXPECT_EQ(backend_.size(), 10u);
  EXPECT_EQ(RunOnce(*d), 0);  // no token left: nothing received
  ASSERT_EQ(source_.receive_calls().size(), 1u);
  clock_.Advance(1'000);  // two tokens
  EXPECT_EQ(RunOnce(*d), 2);
  EXPECT_EQ(source_.receive_calls().back().max_messages, 2);
  EXPECT_EQ(backend_.size(), 12u);
  EXPECT_EQ(source_.size(), 2u);
}

TEST_F(DispatcherTest, BackpressureCountsRealUnfinishedJobs) {
  DispatcherOptions options;
  options.max_active = 2;
  auto d = Make(options, false);
  for (int i = 0; i < 4; ++i) source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 2);
  EXPECT_EQ(RunOnce(*d), 0);  // two unfinished Jobs
  EXPECT_EQ(source_.receive_calls().size(), 1u);
  backend_.SetComplete(backend_.names()[0]);
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(source_.size(), 1u);
}

TEST_F(DispatcherTest, BackendCountFailureIsReturned) {
  DispatcherOptions options;
  options.max_active = 2;
  auto d = Make(options, false);
  source_.Add(R"({"msg": "x"})");
  backend_.set_count_error(Unavailable("apiserver down"));
  auto n = d->RunOnce();
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(n.status().message().find("count active jobs"), std::string::npos);
  EXPECT_TRUE(source_.receive_calls().empty());
}

TEST_F(DispatcherTest, RunLoopsUntilStopped) {
  auto d = Make({}, false);
  for (int i = 0; i < 25; ++i) source_.Add(R"({"msg": "x"})");
  std::atomic<bool> stop{false};
  std::thread loop([&] { d->Run(stop); });
  bool done =
      cruncher::testing::WaitFor([&] { return d->stats().acked.load() == 25; });
  stop = true;
  loop.join();
  EXPECT_TRUE(done);
  EXPECT_EQ(backend_.size(), 25u);
  EXPECT_EQ(source_.size(), 0u);
}

TEST_F(DispatcherTest, RunSurvivesQueueErrorsAndStops) {
  auto d = Make({}, false);
  source_.set_receive_error(Unavailable("network"));
  std::atomic<bool> stop{false};
  std::thread loop([&] { d->Run(stop); });
  EXPECT_TRUE(cruncher::testing::WaitFor(
      [&] { return logs_.Contains("dispatch_failed"); }));
  source_.set_receive_error(Status());
  source_.Add(R"({"msg": "x"})");
  // Retries after its backoff (1 s) and then works.
  EXPECT_TRUE(
      cruncher::testing::WaitFor([&] { return d->stats().acked.load() == 1; }));
  stop = true;
  loop.join();
}

// --- on-success ----------------------------------------------------------

class OnSuccessTest : public DispatcherTest {
 protected:
  DispatcherOptions Options() {
    DispatcherOptions o;
    o.ack = AckStrategy::kOnSuccess;
    o.visibility_seconds = 30;
    o.check_interval = 2'000;
    o.retry_backoff = {1'000, 60'000};
    return o;
  }
};

TEST_F(OnSuccessTest, KeepsTheMessageInFlightExtendsThenDeletesOnComplete) {
  auto d = Make(Options(), false);
  std::string id = source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 1);
  ASSERT_EQ(source_.receive_calls()[0].visibility_seconds, 30);
  EXPECT_EQ(d->tracked(), 1u);
  EXPECT_EQ(d->stats().acked, 0);
  std::string job = JobFor(id);
  ASSERT_TRUE(backend_.Find(job).has_value());
  EXPECT_TRUE(source_.deleted_handles().empty());
  backend_.SetRunning(job);

  // Before half the visibility has passed, nothing to extend.
  clock_.Advance(10'000);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_TRUE(source_.visibility_calls().empty());
  // Past half: extended to the full visibility again.
  clock_.Advance(6'000);
  EXPECT_EQ(RunOnce(*d), 0);
  ASSERT_EQ(source_.visibility_calls().size(), 1u);
  EXPECT_EQ(source_.visibility_calls()[0].seconds, 30);
  // Keeps it invisible well past the first timeout while the Job runs.
  for (int i = 0; i < 30; ++i) {
    clock_.Advance(2'000);
    EXPECT_EQ(RunOnce(*d), 0)
        << "the message was redelivered while its Job ran";
  }
  EXPECT_GE(source_.visibility_calls().size(), 3u);
  for (const auto& call : source_.visibility_calls())
    EXPECT_EQ(call.seconds, 30);
  EXPECT_EQ(source_.Depth()->in_flight, 1);

  backend_.SetComplete(job);
  clock_.Advance(2'000);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_FALSE(source_.Find(id).has_value());
  EXPECT_EQ(d->stats().acked, 1);
  EXPECT_EQ(d->tracked(), 0u);
}

TEST_F(OnSuccessTest, ChecksStatusOnlyEveryCheckInterval) {
  auto d = Make(Options(), false);
  std::string id = source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 1);
  backend_.SetComplete(JobFor(id));
  clock_.Advance(1'999);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_TRUE(source_.Find(id).has_value());
  clock_.Advance(1);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_FALSE(source_.Find(id).has_value());
}

TEST_F(OnSuccessTest, ReleasesWithBackoffWhenTheJobFails) {
  auto d = Make(Options(), false);
  std::string id = source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 1);
  backend_.SetFailed(JobFor(id));
  clock_.Advance(2'000);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_EQ(d->stats().released, 1);
  EXPECT_EQ(d->tracked(), 0u);
  EXPECT_TRUE(source_.deleted_handles().empty());
  ASSERT_EQ(source_.visibility_calls().size(), 1u);
  EXPECT_EQ(source_.visibility_calls()[0].seconds, 1);
  // Visible again after the backoff, with a higher receive count.
  clock_.Advance(1'000);
  auto depth = source_.Depth();
  EXPECT_EQ(depth->visible, 1);
  EXPECT_EQ(RunOnce(*d), 1);
  EXPECT_EQ(source_.Find(id)->message.receive_count, 2);
  EXPECT_EQ(backend_.size(), 1u);  // the failed Job is not duplicated
}

TEST_F(OnSuccessTest, AJobAlreadyCompleteOnRedeliveryIsAckedAtOnce) {
  auto d = Make(Options(), false);
  std::string id = source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 1);
  backend_.SetComplete(JobFor(id));
  // The dispatcher restarts (loses its tracking) and the message reappears.
  auto d2 = Make(Options(), false);
  clock_.Advance(31'000);
  EXPECT_EQ(RunOnce(*d2), 1);
  EXPECT_EQ(d2->stats().jobs_existing, 1);
  EXPECT_FALSE(source_.Find(id).has_value());
  EXPECT_EQ(d2->stats().acked, 1);
}

TEST_F(OnSuccessTest, DeletedJobReleasesTheMessage) {
  auto d = Make(Options(), false);
  std::string id = source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 1);
  ASSERT_TRUE(backend_.Delete(JobFor(id)).ok());
  clock_.Advance(2'000);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_EQ(d->stats().released, 1);
  EXPECT_TRUE(source_.Find(id).has_value());
}

TEST_F(OnSuccessTest, UnknownJobStatusKeepsTheMessageInFlight) {
  auto d = Make(Options(), false);
  std::string id = source_.Add(R"({"msg": "x"})");
  EXPECT_EQ(RunOnce(*d), 1);
  backend_.set_get_error(Unavailable("apiserver down"));
  clock_.Advance(16'000);
  EXPECT_EQ(RunOnce(*d), 0);
  EXPECT_EQ(d->tracked(), 1u);
  EXPECT_EQ(d->stats().released, 0);
  ASSERT_EQ(source_.visibility_calls().size(), 1u);  // still extended
  EXPECT_EQ(source_.visibility_calls()[0].seconds, 30);
}

TEST(AckStrategyTest, Parse) {
  EXPECT_EQ(ParseAckStrategy("on-create"), AckStrategy::kOnCreate);
  EXPECT_EQ(ParseAckStrategy("on-success"), AckStrategy::kOnSuccess);
  EXPECT_EQ(ParseAckStrategy("onsuccess"), std::nullopt);
}

}  // namespace
}  // namespace cruncher::dispatch
