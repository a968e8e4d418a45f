// The SQS client against a local HTTP server that misbehaves: 5xx,
// throttling, slow responses and connection resets, over the real libcurl
// transport.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <stop_token>
#include <thread>

#include "aws/sqs_client.h"
#include "fakes/test_util.h"
#include "test_http_server.h"

namespace cruncher::aws {
namespace {

using nlohmann::json;
using testing::TestHttpReply;
using testing::TestHttpRequest;
using testing::TestHttpServer;

std::unique_ptr<SqsClient> ClientFor(const TestHttpServer& server,
                                     long request_timeout_ms = 5000) {
  SqsClientConfig config;
  config.endpoint = server.url();
  config.region = "us-east-1";
  config.request_timeout_ms = request_timeout_ms;
  config.connect_timeout_ms = 1000;
  AwsCredentials creds;
  creds.access_key_id = "AKIAFAULT";
  creds.secret_access_key = "faultsecret";
  return std::make_unique<SqsClient>(
      config, std::make_shared<net::CurlHttpTransport>(),
      std::make_shared<StaticCredentialsProvider>(creds));
}

std::string QueueUrl(const TestHttpServer& server) {
  return server.url() + "/123456789012/faulty";
}

TestHttpReply SendOk() {
  return TestHttpReply::Json(
      200, R"({"MessageId": "m-1", "MD5OfMessageBody": "x"})");
}

TestHttpReply Error(int status, const std::string& type) {
  return TestHttpReply::Json(status,
                             json({{"__type", "com.amazonaws.sqs#" + type},
                                   {"message", type + " from the test server"}})
                                 .dump());
}

// The first `failures` requests get `fault`, the rest succeed.
TestHttpServer::Handler FailFirst(int failures, TestHttpReply fault,
                                  TestHttpReply ok = SendOk()) {
  auto count = std::make_shared<std::atomic<int>>(0);
  return [=](const TestHttpRequest&) {
    return (*count)++ < failures ? fault : ok;
  };
}

TEST(SqsFaultTest, RetriesServerErrorsAndThrottlingWithinBudget) {
  for (const auto& fault :
       {Error(500, "InternalError"), Error(503, "ServiceUnavailable"),
        Error(400, "RequestThrottled"), Error(400, "ThrottlingException")}) {
    TestHttpServer server(FailFirst(2, fault));
    auto client = ClientFor(server);
    auto id = client->SendMessage(QueueUrl(server), {"{}", {}, 0});
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    EXPECT_EQ(*id, "m-1");
    EXPECT_EQ(server.requests(), 3);
    EXPECT_EQ(client->retry_tokens(), RetryTokenBucket::kCapacity);
  }
}

TEST(SqsFaultTest, PersistentFailureEndsWithClearError) {
  TestHttpServer server(FailFirst(1000, Error(503, "ServiceUnavailable")));
  auto client = ClientFor(server);
  auto id = client->SendMessage(QueueUrl(server), {"{}", {}, 0});
  ASSERT_FALSE(id.ok());
  EXPECT_EQ(id.status().code(), StatusCode::kUnavailable);
  const std::string& msg = id.status().message();
  EXPECT_NE(msg.find("gave up after 3 attempts"), std::string::npos) << msg;
  EXPECT_NE(msg.find("HTTP 503 ServiceUnavailable"), std::string::npos) << msg;
  EXPECT_NE(msg.find(QueueUrl(server)), std::string::npos) << msg;
  EXPECT_EQ(server.requests(), 3);

  TestHttpServer throttling(FailFirst(1000, Error(400, "RequestThrottled")));
  auto throttled =
      ClientFor(throttling)->SendMessage(QueueUrl(throttling), {"{}", {}, 0});
  ASSERT_FALSE(throttled.ok());
  EXPECT_EQ(throttled.status().code(), StatusCode::kThrottled);
}

TEST(SqsFaultTest, SlowResponsesTimeOutAndAreRetried) {
  TestHttpReply slow = SendOk();
  slow.delay_ms = 1500;
  TestHttpServer server(FailFirst(1, slow));
  auto client = ClientFor(server, /*request_timeout_ms=*/300);
  auto id = client->SendMessage(QueueUrl(server), {"{}", {}, 0});
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(server.requests(), 2);

  TestHttpReply always_slow = SendOk();
  always_slow.delay_ms = 1000;
  TestHttpServer hopeless(FailFirst(1000, always_slow));
  auto client2 = ClientFor(hopeless, 200);
  auto failed = client2->SendMessage(QueueUrl(hopeless), {"{}", {}, 0});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(failed.status().message().find("Timeout"), std::string::npos)
      << failed.status().message();
  // Two timeout retries at 10 tokens each.
  EXPECT_EQ(client2->retry_tokens(), RetryTokenBucket::kCapacity - 20);
}

// Issue 8: a stop ends a long poll in progress at once (the dispatcher's
// loop and `watch` stop within a second instead of after the 20 s wait).
TEST(SqsFaultTest, StopAbandonsALongPollInProgress) {
  std::atomic<int> delay_ms{20'000};  // a long poll on an empty queue
  TestHttpServer server([&](const TestHttpRequest&) {
    TestHttpReply empty = TestHttpReply::Json(200, "{}");
    empty.delay_ms = delay_ms.load();
    return empty;
  });
  SqsMessageQueue queue(ClientFor(server), QueueUrl(server));
  std::stop_source stop;
  std::chrono::steady_clock::time_point stopped_at;
  std::thread stopper([&] {
    EXPECT_TRUE(
        cruncher::testing::WaitFor([&] { return server.requests() == 1; }));
    stopped_at = std::chrono::steady_clock::now();
    stop.request_stop();
  });
  auto got = queue.Receive(10, 20, std::nullopt, stop.get_token());
  auto returned_at = std::chrono::steady_clock::now();
  stopper.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->empty());
  EXPECT_LT(returned_at - stopped_at, std::chrono::milliseconds(1'500));
  EXPECT_EQ(server.requests(), 1);  // not retried

  // The client still works afterwards, and a stop requested before the call
  // sends nothing.
  delay_ms = 0;
  auto again = queue.Receive(10, 0, std::nullopt, {});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(server.requests(), 2);
  auto none = queue.Receive(10, 20, std::nullopt, stop.get_token());
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(server.requests(), 2);
}

TEST(SqsFaultTest, ConnectionResetsAreRetried) {
  TestHttpServer server(FailFirst(2, TestHttpReply::Reset()));
  auto client = ClientFor(server);
  auto id = client->SendMessage(QueueUrl(server), {"{}", {}, 0});
  ASSERT_TRUE(id.ok()) << id.status().ToString();
  EXPECT_EQ(server.requests(), 3);

  TestHttpServer always(FailFirst(1000, TestHttpReply::Reset()));
  auto failed = ClientFor(always)->SendMessage(QueueUrl(always), {"{}", {}, 0});
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(failed.status().message().find("curl error"), std::string::npos)
      << failed.status().message();
}

TEST(SqsFaultTest, ConnectionsAreReused) {
  TestHttpServer server([](const TestHttpRequest&) { return SendOk(); });
  auto client = ClientFor(server);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(client->SendMessage(QueueUrl(server), {"{}", {}, 0}).ok());
  }
  EXPECT_EQ(server.requests(), 20);
  EXPECT_EQ(server.connections(), 1);
}

// The server deletes (in its own bookkeeping) but the response never reaches
// the client: no entry may be reported deleted.
TEST(SqsFaultTest, DeleteBatchWithLostResponseReportsEveryEntryFailed) {
  std::mutex mu;
  std::set<std::string> deleted_on_server;
  TestHttpServer server([&](const TestHttpRequest& r) {
    json body = json::parse(r.body);
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& e : body["Entries"]) {
      deleted_on_server.insert(e["ReceiptHandle"].get<std::string>());
    }
    return TestHttpReply::Reset();
  });
  auto client = ClientFor(server);
  std::vector<std::string> handles;
  for (int i = 0; i < 13; ++i) handles.push_back("rh-" + std::to_string(i));
  auto results = client->DeleteMessageBatch(QueueUrl(server), handles);
  ASSERT_EQ(results.size(), handles.size());
  for (std::size_t i = 0; i < results.size(); ++i) {
    EXPECT_EQ(results[i].id, handles[i]);
    EXPECT_FALSE(results[i].status.ok()) << handles[i];
    EXPECT_EQ(results[i].status.code(), StatusCode::kUnavailable);
  }
  {
    std::lock_guard<std::mutex> lock(mu);  // the server thread inserts
    EXPECT_EQ(deleted_on_server.size(), handles.size());
  }
  EXPECT_EQ(server.requests(), 6);  // two batches, three attempts each
}

// Partial failures: server-fault entries are retried, sender-fault ones not;
// each entry's outcome is what the server last said about it.
TEST(SqsFaultTest, DeleteBatchPartialFailures) {
  std::atomic<int> calls{0};
  TestHttpServer server([&](const TestHttpRequest& r) {
    json body = json::parse(r.body);
    json reply = {{"Successful", json::array()}, {"Failed", json::array()}};
    int call = calls++;
    for (const auto& e : body["Entries"]) {
      std::string handle = e["ReceiptHandle"];
      if (handle == "stale") {
        reply["Failed"].push_back(
            {{"Id", e["Id"]},
             {"SenderFault", true},
             {"Code", "ReceiptHandleIsInvalid"},
             {"Message", "The receipt handle has expired."}});
      } else if (handle == "flaky" && call == 0) {
        reply["Failed"].push_back({{"Id", e["Id"]},
                                   {"SenderFault", false},
                                   {"Code", "InternalError"},
                                   {"Message", "try again"}});
      } else {
        reply["Successful"].push_back({{"Id", e["Id"]}});
      }
    }
    return TestHttpReply::Json(200, reply.dump());
  });
  auto client = ClientFor(server);
  auto results =
      client->DeleteMessageBatch(QueueUrl(server), {"good", "stale", "flaky"});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].status.ok());
  EXPECT_FALSE(results[1].status.ok());
  EXPECT_NE(results[1].status.message().find("ReceiptHandleIsInvalid"),
            std::string::npos);
  EXPECT_TRUE(results[2].status.ok()) << results[2].status.ToString();
  EXPECT_EQ(server.requests(), 2);
}

}  // namespace
}  // namespace cruncher::aws
