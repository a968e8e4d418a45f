#include "local/queue_store.h"

#include <gtest/gtest.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fakes/fake_clock.h"
#include "fakes/test_util.h"

extern char** environ;

namespace cruncher::local {
namespace {

using cruncher::testing::FakeClock;
using cruncher::testing::TempDir;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

class QueueStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = LocalQueueStore::Open(dir_.path(), Durability::kNormal, clock_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    ASSERT_TRUE(store_->CreateQueue("q", QueueConfig{}).ok());
  }

  // Sends with the queue's default delay.
  std::string Send(const std::string& body, const std::string& queue = "q") {
    auto id = store_->Send(queue, {body, {}, std::nullopt});
    EXPECT_TRUE(id.ok()) << id.status().ToString();
    return id.ok() ? *id : "";
  }

  std::vector<Message> Receive(int max = 10,
                               std::optional<int> vis = std::nullopt,
                               const std::string& queue = "q") {
    auto r = store_->Receive(queue, max, 0, vis);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<Message>{};
  }

  QueueDepth Depth(const std::string& queue = "q") {
    auto d = store_->Depth(queue);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : QueueDepth{};
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<LocalQueueStore> store_;
};

TEST_F(QueueStoreTest, SendReceiveDelete) {
  MessageAttributes attrs{{"kind", {"String", "demo"}},
                          {"n", {"Number", "42"}},
                          {"bin", {"Binary", std::string("\0\x01\xff", 3)}}};
  auto id = store_->Send("q", {"{\"a\": 1}", attrs, 0});
  ASSERT_TRUE(id.ok());
  auto got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].id, *id);
  EXPECT_EQ(got[0].body, "{\"a\": 1}");
  EXPECT_EQ(got[0].receive_count, 1);
  EXPECT_EQ(got[0].sent_at, clock_.NowMillis());
  EXPECT_EQ(got[0].first_received_at, clock_.NowMillis());
  EXPECT_EQ(got[0].attributes, attrs);
  EXPECT_FALSE(got[0].receipt_handle.empty());
  // In flight: not delivered again.
  EXPECT_TRUE(Receive().empty());
  auto del = store_->Delete("q", {got[0].receipt_handle});
  ASSERT_EQ(del.size(), 1u);
  EXPECT_TRUE(del[0].status.ok()) << del[0].status.ToString();
  EXPECT_EQ(del[0].id, got[0].receipt_handle);
  clock_.Advance(3600'000);
  EXPECT_TRUE(Receive().empty());
  QueueDepth d = Depth();
  EXPECT_EQ(d.visible + d.in_flight + d.delayed, 0);
}

TEST_F(QueueStoreTest, BodyIsKeptVerbatim) {
  std::string body = "  {\"k\" : \"h\xC3\xA9llo\\n\",\n\t\"z\": [1, 2]}  ";
  body += std::string("\x00tail", 5);
  Send(body);
  auto got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, body);
}

TEST_F(QueueStoreTest, ReceivesInOrderAndInBatchesOfAtMostTen) {
  std::vector<std::string> ids;
  for (int i = 0; i < 15; ++i)
    ids.push_back(Send("{\"i\": " + std::to_string(i) + "}"));
  auto first = Receive(10);
  ASSERT_EQ(first.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(first[i].id, ids[i]);
  auto second = Receive(10);
  ASSERT_EQ(second.size(), 5u);
  EXPECT_EQ(second[0].id, ids[10]);

  for (int bad : {0, 11, -1}) {
    auto r = store_->Receive("q", bad, 0, std::nullopt);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  auto wait = store_->Receive("q", 1, 21, std::nullopt);
  ASSERT_FALSE(wait.ok());
  EXPECT_EQ(wait.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(store_->Receive("q", 1, -1, std::nullopt).ok());
  EXPECT_FALSE(store_->Receive("q", 1, 0, 43'201).ok());
  EXPECT_FALSE(store_->Receive("q", 1, 0, -1).ok());
}

TEST_F(QueueStoreTest, SendBatchIsAllOrNothing) {
  std::vector<OutgoingMessage> batch;
  for (int i = 0; i < 10; ++i) batch.push_back({"{}", {}, 0});
  auto ids = store_->SendBatch("q", batch);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(std::set<std::string>(ids->begin(), ids->end()).size(), 10u);
  batch.push_back({std::string(kMaxMessageBytes + 1, 'x'), {}, 0});
  auto bad = store_->SendBatch("q", batch);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Depth().visible, 10);
}

TEST_F(QueueStoreTest, VisibilityExpiryRedeliversWithNewHandle) {
  std::string id = Send("{}");
  auto first = Receive(1, 30);
  ASSERT_EQ(first.size(), 1u);
  clock_.Advance(29'999);
  EXPECT_TRUE(Receive().empty());
  clock_.Advance(1);
  auto second = Receive(1, 30);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].id, id);
  EXPECT_EQ(second[0].receive_count, 2);
  EXPECT_NE(second[0].receipt_handle, first[0].receipt_handle);
  // First receive time is kept.
  EXPECT_EQ(second[0].first_received_at, first[0].first_received_at);
}

TEST_F(QueueStoreTest, StaleHandleCanNeitherDeleteNorChangeVisibility) {
  Send("{}");
  auto first = Receive(1, 30);
  ASSERT_EQ(first.size(), 1u);
  clock_.Advance(31'000);
  auto second = Receive(1, 30);
  ASSERT_EQ(second.size(), 1u);

  auto del = store_->Delete("q", {first[0].receipt_handle});
  ASSERT_EQ(del.size(), 1u);
  EXPECT_EQ(del[0].status.code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(del[0].status.message().find("stale"), std::string::npos);
  auto vis = store_->ChangeVisibility("q", {first[0].receipt_handle}, 0);
  ASSERT_EQ(vis.size(), 1u);
  EXPECT_FALSE(vis[0].status.ok());
  // The message survives, still in flight under the new handle.
  EXPECT_EQ(Depth().in_flight, 1);
  EXPECT_TRUE(Receive().empty());
  auto peek = store_->Peek("q", 10);
  ASSERT_TRUE(peek.ok());
  ASSERT_EQ(peek->size(), 1u);

  // The newest handle works.
  auto ok = store_->ChangeVisibility("q", {second[0].receipt_handle}, 0);
  EXPECT_TRUE(ok[0].status.ok()) << ok[0].status.ToString();
  auto third = Receive(1, 30);
  ASSERT_EQ(third.size(), 1u);
  EXPECT_EQ(third[0].receive_count, 3);
  EXPECT_TRUE(store_->Delete("q", {third[0].receipt_handle})[0].status.ok());
  EXPECT_EQ(Depth().in_flight, 0);
  // The second handle went stale, but the message is gone now: deleting a
  // deleted message is not an error.
  EXPECT_TRUE(store_->Delete("q", {second[0].receipt_handle})[0].status.ok());
}

TEST_F(QueueStoreTest, MalformedHandles) {
  Send("{}");
  auto got = Receive();
  ASSERT_EQ(got.size(), 1u);
  const std::vector<std::string> bad = {"",     "abc",   ".",         "1.",
                                        ".tok", "x.tok", "12abc.tok", "1 .tok"};
  auto del = store_->Delete("q", bad);
  ASSERT_EQ(del.size(), bad.size());
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(del[i].status.code(), StatusCode::kInvalidArgument) << bad[i];
    EXPECT_EQ(del[i].id, bad[i]);
  }
  auto vis = store_->ChangeVisibility("q", bad, 10);
  ASSERT_EQ(vis.size(), bad.size());
  for (size_t i = 0; i < bad.size(); ++i) {
    EXPECT_EQ(vis[i].status.code(), StatusCode::kInvalidArgument) << bad[i];
  }
  // A well-formed handle with the wrong token.
  std::string wrong =
      got[0].receipt_handle.substr(0, got[0].receipt_handle.find('.')) +
      ".0123456789abcdef01234567";
  EXPECT_FALSE(store_->Delete("q", {wrong})[0].status.ok());
  EXPECT_EQ(Depth().in_flight, 1);
  // One bad entry does not fail the others.
  auto mixed = store_->Delete("q", {"bad", got[0].receipt_handle});
  EXPECT_FALSE(mixed[0].status.ok());
  EXPECT_TRUE(mixed[1].status.ok());
  EXPECT_EQ(Depth().in_flight, 0);
}

TEST_F(QueueStoreTest, DeleteOfDeletedMessageWithItsHandleIsOk) {
  Send("{}");
  auto got = Receive();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(store_->Delete("q", {got[0].receipt_handle})[0].status.ok());
  EXPECT_TRUE(store_->Delete("q", {got[0].receipt_handle})[0].status.ok());
  // Changing its visibility is not possible: it is not in flight.
  auto vis = store_->ChangeVisibility("q", {got[0].receipt_handle}, 5);
  EXPECT_EQ(vis[0].status.code(), StatusCode::kFailedPrecondition);
}

TEST_F(QueueStoreTest, ChangeVisibilityExtendsAndReleases) {
  Send("{}");
  auto got = Receive(1, 10);
  ASSERT_EQ(got.size(), 1u);
  clock_.Advance(8'000);
  ASSERT_TRUE(store_->ChangeVisibility("q", {got[0].receipt_handle}, 10)[0]
                  .status.ok());
  clock_.Advance(8'000);  // 16 s after receive: past the original 10 s
  EXPECT_TRUE(Receive().empty());
  clock_.Advance(2'000);
  EXPECT_EQ(Receive(1, 10).size(), 1u);
  EXPECT_FALSE(store_->ChangeVisibility("q", {"1.x"}, 43'201)[0].status.ok());
  EXPECT_FALSE(store_->ChangeVisibility("q", {"1.x"}, -1)[0].status.ok());
}

TEST_F(QueueStoreTest, RedriveToDeadLetterQueueAfterMaxReceiveCount) {
  ASSERT_TRUE(store_->CreateQueue("dlq", QueueConfig{}).ok());
  QueueConfig config;
  config.redrive = RedrivePolicy{"dlq", 3};
  ASSERT_TRUE(store_->CreateQueue("src", config).ok());
  std::string id = Send("{\"poison\": true}", "src");
  for (int i = 1; i <= 3; ++i) {
    auto got = Receive(10, 0, "src");  // visible again at once
    ASSERT_EQ(got.size(), 1u) << i;
    EXPECT_EQ(got[0].receive_count, i);
    EXPECT_EQ(Depth("dlq").visible, 0) << i;
  }
  // The (max+1)-th receive moves it instead of delivering it.
  EXPECT_TRUE(Receive(10, 0, "src").empty());
  QueueDepth src = Depth("src");
  EXPECT_EQ(src.visible + src.in_flight + src.delayed, 0);
  EXPECT_EQ(Depth("dlq").visible, 1);
  auto dead = Receive(10, 30, "dlq");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].id, id);  // keeps its id, as SQS does
  EXPECT_EQ(dead[0].body, "{\"poison\": true}");

  auto sources = store_->DeadLetterSources("dlq");
  ASSERT_TRUE(sources.ok());
  EXPECT_EQ(*sources, std::vector<std::string>{"src"});

  // Redrive back: new id, receive count 0.
  clock_.Advance(31'000);
  auto moved = store_->MoveMessages("dlq", "src", 0);
  ASSERT_TRUE(moved.ok()) << moved.status().ToString();
  EXPECT_EQ(*moved, 1);
  auto peek = store_->Peek("src", 10);
  ASSERT_TRUE(peek.ok());
  ASSERT_EQ(peek->size(), 1u);
  EXPECT_NE((*peek)[0].id, id);
  EXPECT_EQ((*peek)[0].receive_count, 0);
  EXPECT_EQ((*peek)[0].body, "{\"poison\": true}");
  auto again = Receive(10, 30, "src");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].receive_count, 1);
  EXPECT_EQ(Depth("dlq").visible, 0);
}

TEST_F(QueueStoreTest, RedriveFillsTheBatchWithOtherMessages) {
  ASSERT_TRUE(store_->CreateQueue("dlq", QueueConfig{}).ok());
  QueueConfig config;
  config.redrive = RedrivePolicy{"dlq", 1};
  ASSERT_TRUE(store_->CreateQueue("src", config).ok());
  Send("{\"n\": 1}", "src");
  ASSERT_EQ(Receive(1, 0, "src").size(), 1u);  // count 1 = max
  Send("{\"n\": 2}", "src");
  auto got = Receive(10, 30, "src");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "{\"n\": 2}");
  EXPECT_EQ(Depth("dlq").visible, 1);
}

// A redrive policy naming the queue itself must not make a receive move the
// message onto its own queue forever (the receive would never return).
TEST_F(QueueStoreTest, RedriveToItselfDoesNotLoop) {
  QueueConfig config;
  config.redrive = RedrivePolicy{"self", 1};
  ASSERT_TRUE(store_->CreateQueue("self", config).ok());
  std::string id = Send("{}", "self");
  ASSERT_EQ(Receive(10, 0, "self").size(), 1u);
  auto again = Receive(10, 0, "self");
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].id, id);
  EXPECT_EQ(again[0].receive_count, 2);
}

// Finding 11: with A's DLQ B and B's DLQ A, every receive moved a message
// to the other queue; it was never delivered and counted in neither.
TEST_F(QueueStoreTest, ARedriveCycleIsRefused) {
  auto with_dlq = [](const std::string& dlq) {
    QueueConfig config;
    config.redrive = RedrivePolicy{dlq, 1};
    return config;
  };
  ASSERT_TRUE(store_->CreateQueue("a", QueueConfig{}).ok());
  ASSERT_TRUE(store_->CreateQueue("b", with_dlq("a")).ok());
  Status s = store_->SetQueueConfig("a", with_dlq("b"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("cycle of dead-letter queues (a -> b -> a)"),
            std::string::npos)
      << s.message();
  EXPECT_FALSE(store_->GetQueue("a")->config.redrive.has_value());
  // Longer: c -> b -> a, then a -> c.
  ASSERT_TRUE(store_->CreateQueue("c", with_dlq("b")).ok());
  s = store_->SetQueueConfig("a", with_dlq("c"));
  EXPECT_NE(s.message().find("(a -> c -> b -> a)"), std::string::npos)
      << s.message();
  // A chain without a cycle, and one ending in a queue that is its own DLQ
  // (delivered, see RedriveToItselfDoesNotLoop), are fine.
  ASSERT_TRUE(store_->CreateQueue("self", with_dlq("self")).ok());
  EXPECT_TRUE(store_->SetQueueConfig("a", with_dlq("self")).ok());
  EXPECT_TRUE(store_->CreateQueue("d", with_dlq("c")).ok());
  // A policy naming a deleted queue, which a new queue then closes.
  ASSERT_TRUE(store_->CreateQueue("e", with_dlq("gone")).ok());
  s = store_->CreateQueue("gone", with_dlq("e"));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.message();
  EXPECT_EQ(store_->GetQueue("gone").status().code(), StatusCode::kNotFound);
}

TEST_F(QueueStoreTest, MoveMessagesWithLimit) {
  ASSERT_TRUE(store_->CreateQueue("other", QueueConfig{}).ok());
  for (int i = 0; i < 5; ++i) Send("{}");
  auto moved = store_->MoveMessages("q", "other", 2);
  ASSERT_TRUE(moved.ok());
  EXPECT_EQ(*moved, 2);
  EXPECT_EQ(Depth("q").visible, 3);
  EXPECT_EQ(Depth("other").visible, 2);
  EXPECT_EQ(store_->MoveMessages("q", "nope", 0).status().code(),
            StatusCode::kNotFound);
}

TEST_F(QueueStoreTest, MessageSizeLimit) {
  EXPECT_TRUE(
      store_->Send("q", {std::string(kMaxMessageBytes, 'x'), {}, 0}).ok());
  auto big = store_->Send("q", {std::string(kMaxMessageBytes + 1, 'x'), {}, 0});
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(big.status().message().find("1048577"), std::string::npos)
      << big.status().message();
  // Attributes count towards the limit.
  OutgoingMessage with_attr{std::string(kMaxMessageBytes - 10, 'x'),
                            {{"attribute", {"String", "0123456789"}}},
                            0};
  EXPECT_FALSE(store_->Send("q", with_attr).ok());
  auto empty = store_->Send("q", {"", {}, 0});
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  // A queue's own smaller limit.
  QueueConfig small;
  small.max_message_bytes = 1024;
  ASSERT_TRUE(store_->CreateQueue("small", small).ok());
  EXPECT_TRUE(store_->Send("small", {std::string(1024, 'x'), {}, 0}).ok());
  EXPECT_FALSE(store_->Send("small", {std::string(1025, 'x'), {}, 0}).ok());
  // The 1 MiB message comes back whole.
  auto got = Receive(1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body.size(), static_cast<size_t>(kMaxMessageBytes));
}

TEST_F(QueueStoreTest, DelaySeconds) {
  ASSERT_TRUE(store_->Send("q", {"{}", {}, 5}).ok());
  QueueDepth d = Depth();
  EXPECT_EQ(d.delayed, 1);
  EXPECT_EQ(d.visible, 0);
  EXPECT_TRUE(Receive().empty());
  clock_.Advance(4'999);
  EXPECT_TRUE(Receive().empty());
  clock_.Advance(1);
  EXPECT_EQ(Receive().size(), 1u);
  EXPECT_EQ(store_->Send("q", {"{}", {}, 901}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Send("q", {"{}", {}, -1}).status().code(),
            StatusCode::kInvalidArgument);
  // The queue's default delay.
  QueueConfig delayed;
  delayed.delay_seconds = 10;
  ASSERT_TRUE(store_->CreateQueue("delayed", delayed).ok());
  Send("{}", "delayed");
  EXPECT_TRUE(Receive(10, std::nullopt, "delayed").empty());
  clock_.Advance(10'000);
  EXPECT_EQ(Receive(10, std::nullopt, "delayed").size(), 1u);
  // A message's own delay overrides the queue's, 0 included.
  ASSERT_TRUE(store_->Send("delayed", {"now", {}, 0}).ok());
  ASSERT_TRUE(store_->Send("delayed", {"soon", {}, 3}).ok());
  auto now = Receive(10, std::nullopt, "delayed");
  ASSERT_EQ(now.size(), 1u);
  EXPECT_EQ(now[0].body, "now");
  clock_.Advance(3'000);
  EXPECT_EQ(Receive(10, std::nullopt, "delayed").size(), 1u);
}

TEST_F(QueueStoreTest, AwsTraceHeaderTravelsWithTheMessage) {
  OutgoingMessage traced{"{}", {}, std::nullopt, "Root=1-abc;Sampled=1"};
  ASSERT_TRUE(store_->Send("q", traced).ok());
  Send("{}");
  auto got = Receive();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].aws_trace_header, "Root=1-abc;Sampled=1");
  EXPECT_EQ(got[1].aws_trace_header, "");
}

TEST_F(QueueStoreTest, TagsArePerQueueAndSurviveConfigChanges) {
  ASSERT_TRUE(store_
                  ->CreateQueue("tagged", QueueConfig{},
                                {{"team", "batch"}, {"env", "dev"}})
                  .ok());
  ASSERT_TRUE(store_->TagQueue("tagged", {{"env", "prod"}, {"n", "1"}}).ok());
  ASSERT_TRUE(store_->UntagQueue("tagged", {"team", "absent"}).ok());
  auto tags = store_->GetQueueTags("tagged");
  ASSERT_TRUE(tags.ok()) << tags.status().ToString();
  EXPECT_EQ(*tags, (QueueTags{{"env", "prod"}, {"n", "1"}}));
  // Creating it again leaves its tags alone; other queues have none.
  ASSERT_TRUE(store_->CreateQueue("tagged", QueueConfig{}, {{"x", "y"}}).ok());
  QueueConfig changed;
  changed.visibility_timeout = 5;
  ASSERT_TRUE(store_->SetQueueConfig("tagged", changed).ok());
  EXPECT_EQ(store_->GetQueueTags("tagged").value().size(), 2u);
  EXPECT_TRUE(store_->GetQueueTags("q").value().empty());
  EXPECT_EQ(store_->TagQueue("missing", {{"a", "b"}}).code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->GetQueueTags("missing").status().code(),
            StatusCode::kNotFound);
}

TEST_F(QueueStoreTest, PoliciesAreKeptVerbatimAndCompared) {
  QueueConfig config;
  config.policy = R"({"Version": "2012-10-17",  "Statement": []})";
  config.redrive_allow_policy = R"({"redrivePermission":"allowAll"})";
  ASSERT_TRUE(store_->CreateQueue("p", config).ok());
  EXPECT_EQ(store_->GetQueue("p").value().config, config);
  QueueConfig other = config;
  other.policy = "{}";
  EXPECT_EQ(store_->CreateQueue("p", other).code(), StatusCode::kAlreadyExists);
  ASSERT_TRUE(store_->SetQueueConfig("p", other).ok());
  EXPECT_EQ(store_->GetQueue("p").value().config.policy, "{}");
}

TEST_F(QueueStoreTest, RegionalNamesAreOtherQueues) {
  const std::string west = RegionalQueueName("us-west-2", "q");
  EXPECT_EQ(west, "us-west-2/q");
  ASSERT_TRUE(store_->CreateQueue(west, QueueConfig{}).ok());
  ASSERT_TRUE(store_->Send(west, {"west", {}, std::nullopt}).ok());
  Send("home");
  auto home = Receive();
  ASSERT_EQ(home.size(), 1u);
  EXPECT_EQ(home[0].body, "home");
  QueueConfig redriven;
  redriven.redrive = RedrivePolicy{RegionalQueueName("us-west-2", "q"), 3};
  EXPECT_TRUE(
      store_->CreateQueue(RegionalQueueName("us-west-2", "src"), redriven)
          .ok());
  for (const std::string& bad : std::vector<std::string>{
           "/q", "US/q", "us-west-2/", "a/b/c", std::string(33, 'a') + "/q"}) {
    EXPECT_EQ(store_->CreateQueue(bad, QueueConfig{}).code(),
              StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(ValidateQueueName(west).code(), StatusCode::kInvalidArgument);
}

// A database written before the policy, tag and trace header columns
// existed gets them when opened, and keeps its queues and messages.
TEST(QueueStoreOpenTest, OldDatabaseGainsTheNewColumns) {
  TempDir dir;
  {
    auto db = Database::Open(dir.path() + "/cruncher.db", Durability::kNormal);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Exec(R"sql(
CREATE TABLE queues(
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
  created_at INTEGER NOT NULL, modified_at INTEGER NOT NULL,
  visibility_timeout INTEGER NOT NULL, retention_seconds INTEGER NOT NULL,
  delay_seconds INTEGER NOT NULL, receive_wait_seconds INTEGER NOT NULL,
  max_message_bytes INTEGER NOT NULL, dlq_name TEXT, max_receive_count INTEGER);
CREATE TABLE messages(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue_id INTEGER NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
  message_id TEXT NOT NULL, body BLOB NOT NULL, attributes TEXT NOT NULL,
  sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  first_received_at INTEGER NOT NULL DEFAULT 0, receipt TEXT);
INSERT INTO queues VALUES(1, 'old', 0, 0, 30, 345600, 0, 0, 1048576, NULL, NULL);
INSERT INTO messages(queue_id, message_id, body, attributes, sent_at, visible_at)
  VALUES(1, 'id-1', 'kept', '{}', CAST(strftime('%s', 'now') AS INTEGER) * 1000, 0);
)sql")
                    .ok());
  }
  auto store = LocalQueueStore::Open(dir.path(), Durability::kNormal);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto got = (*store)->Receive("old", 10, 0, std::nullopt);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "kept");
  EXPECT_TRUE((*store)->TagQueue("old", {{"a", "b"}}).ok());
  QueueConfig config;
  config.policy = "{}";
  EXPECT_TRUE((*store)->SetQueueConfig("old", config).ok());
  // Opening again finds the columns there and adds nothing.
  auto again = LocalQueueStore::Open(dir.path(), Durability::kNormal);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->GetQueue("old").value().config.policy, "{}");
}

TEST_F(QueueStoreTest, RetentionDropsOldMessages) {
  QueueConfig config;
  config.retention_seconds = 60;
  ASSERT_TRUE(store_->CreateQueue("short", config).ok());
  Send("{\"old\": 1}", "short");
  clock_.Advance(30'000);
  Send("{\"new\": 1}", "short");
  clock_.Advance(30'001);  // the first is 60.001 s old
  auto got = Receive(10, 30, "short");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "{\"new\": 1}");
  clock_.Advance(60'000);
  EXPECT_TRUE(Receive(10, 30, "short").empty());
  QueueDepth d = Depth("short");
  EXPECT_EQ(d.visible + d.in_flight + d.delayed, 0);
}

TEST_F(QueueStoreTest, DepthCountsVisibleInFlightAndDelayed) {
  Send("{}");
  Send("{}");
  Send("{}");
  ASSERT_TRUE(store_->Send("q", {"{}", {}, 60}).ok());
  ASSERT_EQ(Receive(1).size(), 1u);
  QueueDepth d = Depth();
  EXPECT_EQ(d.visible, 2);
  EXPECT_EQ(d.in_flight, 1);
  EXPECT_EQ(d.delayed, 1);
  EXPECT_EQ(store_->Depth("absent").status().code(), StatusCode::kNotFound);
}

TEST_F(QueueStoreTest, CreateQueueIsIdempotentForTheSameConfig) {
  QueueConfig config;
  config.visibility_timeout = 45;
  ASSERT_TRUE(store_->CreateQueue("a", config).ok());
  EXPECT_TRUE(store_->CreateQueue("a", config).ok());
  QueueConfig other = config;
  other.visibility_timeout = 46;
  EXPECT_EQ(store_->CreateQueue("a", other).code(), StatusCode::kAlreadyExists);
  auto info = store_->GetQueue("a");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->config, config);
  EXPECT_EQ(info->config.visibility_timeout, 45);

  QueueConfig with_redrive;
  with_redrive.redrive = RedrivePolicy{"dlq", 4};
  ASSERT_TRUE(store_->CreateQueue("r", with_redrive).ok());
  EXPECT_TRUE(store_->CreateQueue("r", with_redrive).ok());
  EXPECT_EQ(store_->CreateQueue("r", QueueConfig{}).code(),
            StatusCode::kAlreadyExists);
  auto r = store_->GetQueue("r");
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(r->config.redrive.has_value());
  EXPECT_EQ(r->config.redrive->max_receive_count, 4);

  auto names = store_->ListQueues("");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, (std::vector<std::string>{"a", "q", "r"}));
  auto prefixed = store_->ListQueues("r");
  EXPECT_EQ(*prefixed, std::vector<std::string>{"r"});
}

TEST_F(QueueStoreTest, InvalidNamesAndConfigs) {
  for (const std::string& name :
       {std::string(""), std::string(81, 'a'), std::string("a.fifo"),
        std::string("has space"), std::string("/ash"),
        std::string("h\xC3\xA9")}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(store_->CreateQueue(name, QueueConfig{}).code(),
              StatusCode::kInvalidArgument);
  }
  EXPECT_TRUE(store_->CreateQueue(std::string(80, 'a'), QueueConfig{}).ok());
  EXPECT_TRUE(store_->CreateQueue("A-b_9", QueueConfig{}).ok());
  QueueConfig bad;
  bad.visibility_timeout = 43'201;
  EXPECT_EQ(store_->CreateQueue("x", bad).code(), StatusCode::kInvalidArgument);
  bad = QueueConfig{};
  bad.retention_seconds = 59;
  EXPECT_FALSE(store_->CreateQueue("x", bad).ok());
  bad = QueueConfig{};
  bad.redrive = RedrivePolicy{"bad name", 3};
  EXPECT_FALSE(store_->CreateQueue("x", bad).ok());
  bad.redrive = RedrivePolicy{"dlq", 0};
  EXPECT_FALSE(store_->CreateQueue("x", bad).ok());
}

TEST_F(QueueStoreTest, UnknownQueue) {
  EXPECT_EQ(store_->Send("absent", {"{}", {}, 0}).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->Receive("absent", 1, 0, std::nullopt).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete("absent", {"1.a"})[0].status.code(),
            StatusCode::kNotFound);
  EXPECT_EQ(store_->DeleteQueue("absent").code(), StatusCode::kNotFound);
}

TEST_F(QueueStoreTest, PurgeAndDeleteQueue) {
  Send("{}");
  Send("{}");
  ASSERT_TRUE(store_->Purge("q").ok());
  EXPECT_EQ(Depth().visible, 0);
  Send("{}");
  ASSERT_TRUE(store_->DeleteQueue("q").ok());
  EXPECT_EQ(store_->GetQueue("q").status().code(), StatusCode::kNotFound);
  // Recreated, it is empty.
  ASSERT_TRUE(store_->CreateQueue("q", QueueConfig{}).ok());
  EXPECT_EQ(Depth().visible, 0);
}

TEST_F(QueueStoreTest, MessagesSurviveReopening) {
  std::string id = Send("{\"durable\": true}");
  store_.reset();
  auto reopened = LocalQueueStore::Open(dir_.path(), Durability::kFull, clock_);
  ASSERT_TRUE(reopened.ok());
  auto got = (*reopened)->Receive("q", 10, 0, std::nullopt);
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].id, id);
}

TEST(QueueStoreOpenTest, UnwritableDirectoryIsUnavailable) {
  auto s = LocalQueueStore::Open("/proc/self/cruncher-cannot-create");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(s.status().message().find("/proc/self/cruncher-cannot-create"),
            std::string::npos);
}

// --- Long polling (real clock: the wait uses steady_clock and the doorbell)

class LongPollTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = LocalQueueStore::Open(dir_.path(), Durability::kNormal);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
    ASSERT_TRUE(store_->CreateQueue("q", QueueConfig{}).ok());
  }
  TempDir dir_;
  std::unique_ptr<LocalQueueStore> store_;
};

TEST_F(LongPollTest, ReturnsEmptyAfterTheWait) {
  auto start = steady_clock::now();
  auto got = store_->Receive("q", 10, 1, std::nullopt);
  auto elapsed = steady_clock::now() - start;
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  EXPECT_GE(elapsed, milliseconds(990));
}

TEST_F(LongPollTest, WakesWhenAnotherThreadSends) {
  std::thread sender([&] {
    std::this_thread::sleep_for(milliseconds(200));
    ASSERT_TRUE(store_->Send("q", {"{\"t\": 1}", {}, 0}).ok());
  });
  auto start = steady_clock::now();
  auto got = store_->Receive("q", 10, 20, std::nullopt);
  auto elapsed = steady_clock::now() - start;
  sender.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "{\"t\": 1}");
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST_F(LongPollTest, WakesWhenAMessageBecomesVisibleAgain) {
  ASSERT_TRUE(store_->Send("q", {"{}", {}, 0}).ok());
  auto first = store_->Receive("q", 1, 0, 1);  // invisible for 1 s
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 1u);
  auto start = steady_clock::now();
  auto again = store_->Receive("q", 1, 20, std::nullopt);
  auto elapsed = steady_clock::now() - start;
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(again->size(), 1u);
  EXPECT_EQ((*again)[0].receive_count, 2);
  EXPECT_LT(elapsed, std::chrono::seconds(6));
}

TEST_F(LongPollTest, WakesWhenAnotherStoreOnTheSameDirectorySends) {
  auto other = LocalQueueStore::Open(dir_.path(), Durability::kNormal);
  ASSERT_TRUE(other.ok());
  std::thread sender([&] {
    std::this_thread::sleep_for(milliseconds(200));
    ASSERT_TRUE((*other)->Send("q", {"{\"from\": \"other\"}", {}, 0}).ok());
  });
  auto start = steady_clock::now();
  auto got = store_->Receive("q", 10, 20, std::nullopt);
  auto elapsed = steady_clock::now() - start;
  sender.join();
  ASSERT_TRUE(got.ok());
  ASSERT_EQ(got->size(), 1u);
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST_F(LongPollTest, WakesWhenAnotherProcessSends) {
  const std::string body = "{\"from\": \"another process\"}";
  std::vector<std::string> args = {CRUNCHER_QUEUE_SEND_HELPER, dir_.path(), "q",
                                   body, "300"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  auto start = steady_clock::now();
  ASSERT_EQ(
      ::posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ), 0);
  auto got = store_->Receive("q", 10, 20, std::nullopt);
  auto elapsed = steady_clock::now() - start;
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), 1u)
      << "the long poll did not see the other process' message";
  EXPECT_EQ((*got)[0].body, body);
  // Well before the 20 s wait: the doorbell crossed the process boundary.
  EXPECT_LT(elapsed, std::chrono::seconds(5));
}

TEST_F(LongPollTest, TwoStoresConcurrentSendersAllReceivedExactlyOnce) {
  auto other_open = LocalQueueStore::Open(dir_.path(), Durability::kNormal);
  ASSERT_TRUE(other_open.ok());
  std::unique_ptr<LocalQueueStore> other = std::move(other_open).value();
  constexpr int kPerSender = 500;
  std::set<std::string> sent_ids;
  std::mutex mu;
  auto send_all = [&](LocalQueueStore* store, int sender) {
    for (int i = 0; i < kPerSender; ++i) {
      std::string body = "{\"sender\": " + std::to_string(sender) +
                         ", \"i\": " + std::to_string(i) + "}";
      auto id = store->Send("q", {body, {}, 0});
      ASSERT_TRUE(id.ok()) << id.status().ToString();
      std::lock_guard<std::mutex> lock(mu);
      sent_ids.insert(*id);
    }
  };
  std::map<std::string, int> received;  // body -> times
  std::set<std::string> received_ids;
  std::atomic<int> total{0};
  auto receive_all = [&](LocalQueueStore* store) {
    auto deadline = steady_clock::now() + std::chrono::seconds(40);
    while (total.load() < 2 * kPerSender && steady_clock::now() < deadline) {
      auto got = store->Receive("q", 10, 1, 60);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      std::vector<std::string> handles;
      {
        std::lock_guard<std::mutex> lock(mu);
        for (const auto& m : *got) {
          received[m.body]++;
          received_ids.insert(m.id);
          handles.push_back(m.receipt_handle);
        }
      }
      total += static_cast<int>(got->size());
      if (!handles.empty()) {
        for (const auto& r : store->Delete("q", handles)) {
          ASSERT_TRUE(r.status.ok()) << r.status.ToString();
        }
      }
    }
  };
  std::thread r1(receive_all, store_.get());
  std::thread r2(receive_all, other.get());
  std::thread s1(send_all, store_.get(), 1);
  std::thread s2(send_all, other.get(), 2);
  s1.join();
  s2.join();
  r1.join();
  r2.join();
  EXPECT_EQ(sent_ids.size(), 2u * kPerSender);
  EXPECT_EQ(total.load(), 2 * kPerSender);
  EXPECT_EQ(received.size(), 2u * kPerSender);
  for (const auto& [body, times] : received) EXPECT_EQ(times, 1) << body;
  EXPECT_EQ(received_ids, sent_ids);
  auto d = store_->Depth("q");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->visible + d->in_flight + d->delayed, 0);
}

}  // namespace
}  // namespace cruncher::local

namespace cruncher::local {
namespace {

// The CLI and `local serve` often open a fresh data directory at the same
// moment; neither may fail with "database is locked".
TEST(QueueStoreOpenTest, ConcurrentOpensOfAFreshDirectoryAllSucceed) {
  for (int round = 0; round < 10; ++round) {
    char tmpl[] = "/tmp/cruncher-open-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    std::string dir = tmpl;
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    std::string last_error;
    std::mutex mu;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&] {
        auto store = LocalQueueStore::Open(dir);
        if (!store.ok()) {
          failures++;
          std::lock_guard<std::mutex> lock(mu);
          last_error = store.status().ToString();
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failures.load(), 0) << last_error;
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace cruncher::local
