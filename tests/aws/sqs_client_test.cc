#include "aws/sqs_client.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <stop_token>
#include <thread>

#include "fakes/fake_clock.h"
#include "fakes/fake_http_transport.h"
#include "fakes/test_util.h"

namespace cruncher::aws {
namespace {

using cruncher::testing::FakeHttpTransport;
using cruncher::testing::RequestHeader;
using nlohmann::json;

constexpr char kQueue[] = "https://sqs.us-east-1.amazonaws.com/123456789012/q";

struct Harness {
  explicit Harness(FakeHttpTransport::Handler script, RetryPolicy retry = {})
      : transport(std::make_shared<FakeHttpTransport>(std::move(script))) {
    SqsClientConfig config;
    config.endpoint = "https://sqs.us-east-1.amazonaws.com";
    config.region = "us-east-1";
    config.retry = retry;
    config.sleep = [this](Millis ms) { sleeps.push_back(ms); };
    config.jitter = [] { return 0.5; };
    AwsCredentials creds;
    creds.access_key_id = "AKIATEST";
    creds.secret_access_key = "secret";
    creds.source = "test";
    client = std::make_unique<SqsClient>(
        config, transport, std::make_shared<StaticCredentialsProvider>(creds),
        clock);
  }
  cruncher::testing::FakeClock clock{1440938160000};  // 2015-08-30T12:36:00Z
  std::shared_ptr<FakeHttpTransport> transport;
  std::vector<Millis> sleeps;
  std::unique_ptr<SqsClient> client;
};

net::HttpOutcome SqsError(long status, const std::string& type,
                          const std::string& message,
                          std::map<std::string, std::string> headers = {}) {
  json body = {{"__type", "com.amazonaws.sqs#" + type}, {"message", message}};
  return FakeHttpTransport::Reply(status, body.dump(), std::move(headers));
}

TEST(SqsClientTest, ReceiveSendsJsonProtocolRequestAndParsesMessages) {
  Harness h([](const net::HttpRequest&, int) {
    json reply = {
        {"Messages",
         {{{"MessageId", "m1"},
           {"ReceiptHandle", "rh1"},
           {"Body", "{\"x\": 1}"},
           {"Attributes",
            {{"ApproximateReceiveCount", "3"},
             {"SentTimestamp", "1700000000000"},
             {"ApproximateFirstReceiveTimestamp", "1700000001000"}}},
           {"MessageAttributes",
            {{"reason", {{"DataType", "String"}, {"StringValue", "bad"}}},
             {"blob", {{"DataType", "Binary"}, {"BinaryValue", "AAH/"}}}}}}}}};
    return FakeHttpTransport::Reply(200, reply.dump());
  });
  auto messages = h.client->ReceiveMessage(kQueue, 10, 20, 45);
  ASSERT_TRUE(messages.ok()) << messages.status().ToString();
  ASSERT_EQ(messages->size(), 1u);
  const Message& m = (*messages)[0];
  EXPECT_EQ(m.id, "m1");
  EXPECT_EQ(m.receipt_handle, "rh1");
  EXPECT_EQ(m.body, "{\"x\": 1}");
  EXPECT_EQ(m.receive_count, 3);
  EXPECT_EQ(m.sent_at, 1700000000000);
  EXPECT_EQ(m.first_received_at, 1700000001000);
  EXPECT_EQ(m.attributes.at("reason").value, "bad");
  EXPECT_EQ(m.attributes.at("blob").value, std::string("\0\x01\xff", 3));

  auto requests = h.transport->requests();
  ASSERT_EQ(requests.size(), 1u);
  const net::HttpRequest& r = requests[0];
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.url, "https://sqs.us-east-1.amazonaws.com/");
  EXPECT_EQ(RequestHeader(r, "X-Amz-Target"), "AmazonSQS.ReceiveMessage");
  EXPECT_EQ(RequestHeader(r, "Content-Type"), "application/x-amz-json-1.0");
  EXPECT_NE(
      RequestHeader(r, "Authorization").find("/us-east-1/sqs/aws4_request"),
      std::string::npos);
  EXPECT_GT(r.timeout_ms, 20000);  // above the long-poll wait
  json body = json::parse(r.body);
  EXPECT_EQ(body["QueueUrl"], kQueue);
  EXPECT_EQ(body["MaxNumberOfMessages"], 10);
  EXPECT_EQ(body["WaitTimeSeconds"], 20);
  EXPECT_EQ(body["VisibilityTimeout"], 45);
  EXPECT_EQ(body["MessageAttributeNames"], json({"All"}));
  EXPECT_EQ(body["MessageSystemAttributeNames"],
            json({"ApproximateReceiveCount", "SentTimestamp",
                  "ApproximateFirstReceiveTimestamp"}));
}

// Issue 8, defect 10: responses are outside input too. A body nested
// 100,000 levels deep, or one that is not an object, is an error that says
// so, not a crash or an empty receive.
TEST(SqsClientTest, ResponsesNestedTooDeeplyOrNotObjectsAreErrors) {
  const std::string deep = R"({"Messages":)" + std::string(100000, '[') +
                           std::string(100000, ']') + "}";
  for (const std::string& body : {deep, std::string("[1, 2]")}) {
    Harness h([&](const net::HttpRequest&, int) {
      return FakeHttpTransport::Reply(200, body);
    });
    auto messages = h.client->ReceiveMessage(kQueue, 10, 0, std::nullopt);
    ASSERT_FALSE(messages.ok());
    EXPECT_EQ(messages.status().code(), StatusCode::kInternal);
    EXPECT_NE(messages.status().message().find(
                  body == deep ? "nested deeper than the limit"
                               : "not a JSON object"),
              std::string::npos)
        << messages.status().message();
  }
  // An error response that deep still yields the HTTP status.
  Harness h([&](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(400, std::string(100000, '{'));
  });
  auto sent = h.client->SendMessage(kQueue, OutgoingMessage{"x", {}, 0});
  ASSERT_FALSE(sent.ok());
  EXPECT_NE(sent.status().message().find("HTTP 400"), std::string::npos)
      << sent.status().message();
}

TEST(SqsClientTest, ReceiveValidatesArguments) {
  Harness h([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(200, "{}");
  });
  EXPECT_EQ(h.client->ReceiveMessage(kQueue, 11, 0, {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(h.client->ReceiveMessage(kQueue, 1, 21, {}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(h.transport->requests().empty());
}

TEST(SqsClientTest, NonRetryableErrorsSurfaceWithCodeAndQueue) {
  Harness h([](const net::HttpRequest&, int) {
    return SqsError(400, "QueueDoesNotExist",
                    "The specified queue does not exist.",
                    {{"x-amzn-query-error",
                      "AWS.SimpleQueueService.NonExistentQueue;Sender"}});
  });
  auto r = h.client->SendMessage(kQueue, {"{}", {}, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  const std::string& msg = r.status().message();
  EXPECT_NE(msg.find("SendMessage"), std::string::npos) << msg;
  EXPECT_NE(msg.find(kQueue), std::string::npos) << msg;
  EXPECT_NE(msg.find("HTTP 400"), std::string::npos) << msg;
  EXPECT_NE(msg.find("QueueDoesNotExist"), std::string::npos) << msg;
  EXPECT_NE(msg.find("AWS.SimpleQueueService.NonExistentQueue"),
            std::string::npos)
      << msg;
  EXPECT_EQ(h.transport->requests().size(), 1u);  // not retried
  EXPECT_EQ(msg.find("secret"), std::string::npos);
}

TEST(SqsClientTest, RetriesThrottlingAnd5xxThenSucceedsAndRefunds) {
  Harness h([](const net::HttpRequest&, int n) {
    if (n == 0) return SqsError(400, "RequestThrottled", "slow down");
    if (n == 1) return SqsError(503, "ServiceUnavailable", "");
    return FakeHttpTransport::Reply(200, R"({"MessageId": "id-1"})");
  });
  auto r = h.client->SendMessage(kQueue, {"{}", {}, 0});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, "id-1");
  EXPECT_EQ(h.transport->requests().size(), 3u);
  // Full jitter at 0.5: 50% of 50 ms, then of 100 ms.
  EXPECT_EQ(h.sleeps, (std::vector<Millis>{25, 50}));
  EXPECT_EQ(h.client->retry_tokens(), RetryTokenBucket::kCapacity);
}

// Issue 8: without the test seam, retry backoffs wait on the client's clock
// and a stop ends them (and the receive, with nothing) at once.
TEST(SqsClientTest, ReceiveRetryBackoffEndsOnStop) {
  auto transport =
      std::make_shared<FakeHttpTransport>([](const net::HttpRequest&, int) {
        return SqsError(503, "ServiceUnavailable", "");
      });
  cruncher::testing::FakeClock clock;
  clock.set_auto_advance(false);
  SqsClientConfig config;
  config.endpoint = "https://sqs.us-east-1.amazonaws.com";
  config.region = "us-east-1";
  config.retry.base_delay_ms = 60'000;
  config.jitter = [] { return 0.5; };
  AwsCredentials creds;
  creds.access_key_id = "AKIATEST";
  creds.secret_access_key = "secret";
  auto client = std::make_shared<SqsClient>(
      config, transport, std::make_shared<StaticCredentialsProvider>(creds),
      clock);
  SqsMessageQueue queue(client, kQueue);
  std::stop_source stop;
  Result<std::vector<Message>> got = Internal("not run");
  std::thread receiver(
      [&] { got = queue.Receive(10, 20, std::nullopt, stop.get_token()); });
  // The retry backoff waits on the clock (a real sleep would never show).
  EXPECT_TRUE(cruncher::testing::WaitFor([&] { return clock.sleepers() == 1; },
                                         std::chrono::seconds(10)));
  EXPECT_EQ(transport->requests().size(), 1u);
  ASSERT_TRUE(transport->requests()[0].stop.stop_possible());
  stop.request_stop();
  receiver.join();
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->empty());
  EXPECT_EQ(transport->requests().size(), 1u);  // no retry after the stop
}

TEST(SqsClientTest, GivesUpAfterMaxAttemptsWithTheLastError) {
  Harness h([](const net::HttpRequest&, int) {
    return SqsError(400, "ThrottlingException", "Rate exceeded");
  });
  auto r = h.client->SendMessage(kQueue, {"{}", {}, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kThrottled);
  EXPECT_NE(r.status().message().find("gave up after 3 attempts"),
            std::string::npos)
      << r.status().message();
  EXPECT_EQ(h.transport->requests().size(), 3u);
  EXPECT_EQ(h.client->retry_tokens(), RetryTokenBucket::kCapacity - 10);
}

TEST(SqsClientTest, RetryBudgetRunsOut) {
  RetryPolicy retry;
  retry.max_attempts = 1000;
  Harness h(
      [](const net::HttpRequest& r, int) {
        return FakeHttpTransport::ConnectionFailure(r, /*timed_out=*/true);
      },
      retry);
  auto r = h.client->SendMessage(kQueue, {"{}", {}, 0});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("retry budget exhausted"),
            std::string::npos);
  // 500 tokens at 10 per timeout retry: 50 retries, 51 attempts.
  EXPECT_EQ(h.transport->requests().size(), 51u);
  EXPECT_EQ(h.client->retry_tokens(), 0);
}

TEST(SqsClientTest, CorrectsClockSkewFromDateHeader) {
  Harness h([](const net::HttpRequest& r, int n) {
    if (n == 0) {
      return SqsError(400, "InvalidSignatureException",
                      "Signature expired: 20150830T123600Z is now earlier "
                      "than 20150830T134100Z (20150830T133600Z - 5 min.)",
                      {{"date", "Sun, 30 Aug 2015 13:36:00 GMT"}});
    }
    EXPECT_EQ(RequestHeader(r, "X-Amz-Date"), "20150830T133600Z");
    return FakeHttpTransport::Reply(200, R"({"MessageId": "id"})");
  });
  auto r = h.client->SendMessage(kQueue, {"{}", {}, 0});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(h.client->clock_skew_ms(), 3600 * 1000);
  EXPECT_EQ(h.transport->requests().size(), 2u);
}

TEST(SqsClientTest, BatchRetriesOnlyServerFaultEntries) {
  Harness h([](const net::HttpRequest& r, int n) {
    json body = json::parse(r.body);
    if (n == 0) {
      EXPECT_EQ(body["Entries"].size(), 3u);
      return FakeHttpTransport::Reply(
          200, json({{"Successful", {{{"Id", "0"}}}},
                     {"Failed",
                      {{{"Id", "1"},
                        {"SenderFault", false},
                        {"Code", "InternalError"},
                        {"Message", "try again"}},
                       {{"Id", "2"},
                        {"SenderFault", true},
                        {"Code", "ReceiptHandleIsInvalid"},
                        {"Message", "bad handle"}}}}})
                   .dump());
    }
    // Only the server-fault entry is retried.
    EXPECT_EQ(body["Entries"].size(), 1u);
    EXPECT_EQ(body["Entries"][0]["Id"], "1");
    EXPECT_EQ(body["Entries"][0]["ReceiptHandle"], "h1");
    return FakeHttpTransport::Reply(200, R"({"Successful": [{"Id": "1"}]})");
  });
  auto results = h.client->DeleteMessageBatch(kQueue, {"h0", "h1", "h2"});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].id, "h0");
  EXPECT_TRUE(results[0].status.ok());
  EXPECT_TRUE(results[1].status.ok());
  EXPECT_FALSE(results[2].status.ok());
  EXPECT_EQ(results[2].status.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(results[2].status.message().find("ReceiptHandleIsInvalid"),
            std::string::npos);
  EXPECT_EQ(h.transport->requests().size(), 2u);
}

TEST(SqsClientTest, BatchEntriesMissingFromResponseAreFailures) {
  Harness h([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(200, R"({"Successful": [{"Id": "0"}]})");
  });
  auto results = h.client->ChangeMessageVisibilityBatch(kQueue, {"a", "b"}, 30);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].status.ok());
  EXPECT_EQ(results[1].status.code(), StatusCode::kInternal);
  json body = json::parse(h.transport->requests()[0].body);
  EXPECT_EQ(body["Entries"][1]["VisibilityTimeout"], 30);
}

TEST(SqsClientTest, SendBatchChunksByCountAndBytes) {
  std::vector<std::size_t> chunk_sizes;
  std::mutex mu;
  Harness h([&](const net::HttpRequest& r, int) {
    json body = json::parse(r.body);
    json ok = {{"Successful", json::array()}};
    std::size_t bytes = 0;
    for (const auto& e : body["Entries"]) {
      ok["Successful"].push_back(
          {{"Id", e["Id"]},
           {"MessageId", "mid-" + e["Id"].get<std::string>()}});
      bytes += e["MessageBody"].get<std::string>().size();
    }
    EXPECT_LE(body["Entries"].size(), 10u);
    EXPECT_LE(bytes, kMaxBatchPayloadBytes);
    std::lock_guard<std::mutex> lock(mu);
    chunk_sizes.push_back(body["Entries"].size());
    return FakeHttpTransport::Reply(200, ok.dump());
  });
  std::vector<OutgoingMessage> messages;
  for (int i = 0; i < 23; ++i)
    messages.push_back({"{\"i\":" + std::to_string(i) + "}", {}, 0});
  // Three messages of 400 KiB: two fit in 1 MiB, the third starts a batch.
  for (int i = 0; i < 3; ++i)
    messages.push_back({std::string(400 * 1024, 'x'), {}, 0});
  messages.push_back({std::string(kMaxBatchPayloadBytes + 1, 'y'), {}, 0});
  auto results = h.client->SendMessageBatch(kQueue, messages);
  ASSERT_EQ(results.size(), messages.size());
  for (std::size_t i = 0; i + 1 < results.size(); ++i) {
    EXPECT_TRUE(results[i].status.ok()) << i << results[i].status.ToString();
    EXPECT_EQ(results[i].message_id, "mid-" + std::to_string(i));
    EXPECT_EQ(results[i].index, i);
  }
  EXPECT_EQ(results.back().status.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(chunk_sizes, (std::vector<std::size_t>{10, 10, 5, 1}));
}

TEST(SqsClientTest, SendMessageAttributes) {
  Harness h([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(200, R"({"MessageId": "x"})");
  });
  OutgoingMessage m{"body", {}, 5};
  m.attributes["reason"] = {"String", "missing variable"};
  m.attributes["raw"] = {"Binary", std::string("\0\1", 2)};
  ASSERT_TRUE(h.client->SendMessage(kQueue, m).ok());
  json body = json::parse(h.transport->requests()[0].body);
  EXPECT_EQ(body["DelaySeconds"], 5);
  EXPECT_EQ(body["MessageAttributes"]["reason"]["StringValue"],
            "missing variable");
  EXPECT_EQ(body["MessageAttributes"]["raw"]["BinaryValue"], "AAE=");
}

TEST(SqsClientTest, RedrivePolicyAndDeadLetterQueueUrl) {
  Harness h([](const net::HttpRequest& r, int) {
    json body = json::parse(r.body);
    std::string target = RequestHeader(r, "X-Amz-Target");
    if (target == "AmazonSQS.GetQueueAttributes") {
      return FakeHttpTransport::Reply(
          200,
          json(
              {{"Attributes",
                {{"RedrivePolicy",
                  R"({"deadLetterTargetArn":"arn:aws:sqs:us-east-1:123456789012:q-dlq","maxReceiveCount":"3"})"}}}})
              .dump());
    }
    EXPECT_EQ(target, "AmazonSQS.GetQueueUrl");
    EXPECT_EQ(body["QueueName"], "q-dlq");
    EXPECT_EQ(body["QueueOwnerAWSAccountId"], "123456789012");
    return FakeHttpTransport::Reply(
        200,
        R"({"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q-dlq"})");
  });
  auto policy = h.client->GetRedrivePolicy(kQueue);
  ASSERT_TRUE(policy.ok()) << policy.status().ToString();
  ASSERT_TRUE(policy->has_value());
  EXPECT_EQ((*policy)->max_receive_count, 3);
  auto url = h.client->QueueUrlFromArn((*policy)->dead_letter_target_arn);
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(*url, "https://sqs.us-east-1.amazonaws.com/123456789012/q-dlq");
  EXPECT_FALSE(ParseQueueArn("arn:aws:sns:us-east-1:1:topic").ok());
}

TEST(SqsClientTest, StartMessageMoveTaskRequest) {
  Harness h([](const net::HttpRequest& r, int) {
    EXPECT_EQ(RequestHeader(r, "X-Amz-Target"),
              "AmazonSQS.StartMessageMoveTask");
    json body = json::parse(r.body);
    EXPECT_EQ(body["SourceArn"], "arn:aws:sqs:us-east-1:1:dlq");
    EXPECT_FALSE(body.contains("DestinationArn"));
    EXPECT_EQ(body["MaxNumberOfMessagesPerSecond"], 50);
    return FakeHttpTransport::Reply(200, R"({"TaskHandle": "handle-1"})");
  });
  auto handle = h.client->StartMessageMoveTask("arn:aws:sqs:us-east-1:1:dlq",
                                               std::nullopt, 50);
  ASSERT_TRUE(handle.ok()) << handle.status().ToString();
  EXPECT_EQ(*handle, "handle-1");
}

TEST(OpenSqsTest, RegionAndEndpointFromQueueUrlAndOverrides) {
  auto transport =
      std::make_shared<FakeHttpTransport>([](const net::HttpRequest&, int) {
        return FakeHttpTransport::Reply(200, "{}");
      });
  AwsCredentials creds;
  creds.access_key_id = "A";
  creds.secret_access_key = "S";
  SqsOptions options;
  options.env = EnvVars{{"HOME", "/nonexistent"}, {"AWS_REGION", "us-west-2"}};
  options.transport = transport;
  options.credentials = std::make_shared<StaticCredentialsProvider>(creds);

  options.queue = "https://sqs.eu-central-1.amazonaws.com/1/q";
  auto client = OpenSqsClient(options);
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  EXPECT_EQ((*client)->config().region, "eu-central-1");
  EXPECT_EQ((*client)->config().endpoint,
            "https://sqs.eu-central-1.amazonaws.com");

  options.queue = "q";
  client = OpenSqsClient(options);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->config().endpoint,
            "https://sqs.us-west-2.amazonaws.com");

  (*options.env)["AWS_ENDPOINT_URL_SQS"] = "http://127.0.0.1:9324";
  client = OpenSqsClient(options);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->config().endpoint, "http://127.0.0.1:9324");
  EXPECT_EQ((*client)->config().region, "us-west-2");

  options.endpoint_url = "http://localhost:4566";
  client = OpenSqsClient(options);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->config().endpoint, "http://localhost:4566");

  options.env = EnvVars{{"HOME", "/nonexistent"}};
  options.endpoint_url.clear();
  auto no_region = OpenSqsClient(options);
  ASSERT_FALSE(no_region.ok());
  EXPECT_EQ(no_region.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(no_region.status().message().find("region"), std::string::npos);

  options.queue = "http://localhost:9324/000000000000/q";
  client = OpenSqsClient(options);
  ASSERT_TRUE(client.ok());
  EXPECT_EQ((*client)->config().region, "us-east-1");
  EXPECT_EQ((*client)->config().endpoint, "http://localhost:9324");
}

}  // namespace
}  // namespace cruncher::aws
