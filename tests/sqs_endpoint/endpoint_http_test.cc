// The SqsEndpoint over real HTTP: bad input of every shape, idle and slow
// clients, and stopping with long polls open. Runs under ASan+UBSan in the
// sanitizer build, where undefined behaviour on bad input fails the test.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <vector>

#include "core/json_limits.h"
#include "core/log.h"
#include "core/random_id.h"
#include "http_client.h"
#include "local/queue_store.h"
#include "sqs_endpoint/sqs_endpoint.h"

namespace cruncher::sqs {
namespace {

using Json = nlohmann::json;
using testing::PostSqs;
using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

class EndpointHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Thousands of rejected requests each log a line; keep the output short.
    SetLogLevel(LogLevel::kError);
    dir_ = std::filesystem::temp_directory_path() /
           ("sqs-endpoint-" + RandomHex(6));
    auto store =
        local::LocalQueueStore::Open(dir_.string(), local::Durability::kNormal);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }
  void TearDown() override {
    endpoint_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
    SetLogLevel(LogLevel::kInfo);
  }
  void StartEndpoint(SqsEndpointOptions options = {}) {
    options.port = 0;
    auto endpoint = SqsEndpoint::Start(*store_, options);
    ASSERT_TRUE(endpoint.ok()) << endpoint.status().ToString();
    endpoint_ = std::move(endpoint).value();
  }
  int port() const { return endpoint_->port(); }
  Json Ok(const std::string& op, const Json& in) {
    testing::HttpReply r = PostSqs(port(), op, in.dump());
    EXPECT_EQ(r.status, 200) << op << ": " << r.error << r.body;
    auto out = ParseJson(r.body);
    return out.ok() ? *out : Json::object();
  }

  std::filesystem::path dir_;
  std::unique_ptr<local::LocalQueueStore> store_;
  std::unique_ptr<SqsEndpoint> endpoint_;
};

// ---- bad input ----

// One way to spoil a field: leave it out, or replace it.
struct Variant {
  std::string name;
  Json value;
  bool missing = false;
  bool deep = false;  // replaced by 100,000 nested arrays (raw text)
};

constexpr char kDeepMarker[] = "@@deep@@";

std::vector<Variant> Variants() {
  Json many_numbers = Json::array();
  Json many_keys = Json::object();
  for (int i = 0; i < 100000; ++i) many_numbers.push_back(i);
  // Fewer keys than elements: each costs an allocation on both sides, and
  // the sweep sends this to every field.
  for (int i = 0; i < 10000; ++i) many_keys["k" + std::to_string(i)] = "v";
  return {
      {"missing", nullptr, true},
      {"null", nullptr},
      {"true", true},
      {"zero", 0},
      {"minus_one", -1},
      {"int64_max", INT64_MAX},
      {"uint64_max", UINT64_MAX},
      {"fraction", 1.5},
      {"huge_double", 1e308},
      {"empty_string", ""},
      {"string", "x"},
      {"string_2MiB", std::string(2 * 1024 * 1024, 'a')},
      {"string_2MiB_multibyte",
       [] {
         std::string s;
         for (int i = 0; i < 700000; ++i) s += "\xc3\xa9";  // é
         return Json(s);
       }()},
      {"empty_array", Json::array()},
      {"array_of_object", Json::array({Json::object()})},
      {"array_100k_numbers", many_numbers},
      {"empty_object", Json::object()},
      {"object_10k_keys", many_keys},
      {"nested_100k", nullptr, false, true},
  };
}

// JSON pointers to every member and element inside `j`.
void Paths(const Json& j, const Json::json_pointer& at,
           std::vector<Json::json_pointer>& out) {
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      out.push_back(at / key);
      Paths(value, at / key, out);
    }
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      out.push_back(at / i);
      Paths(j[i], at / i, out);
    }
  }
}

// `base` with the field at `path` spoiled by `variant`, as request text.
std::string Spoil(Json base, const Json::json_pointer& path,
                  const Variant& variant) {
  Json& parent = base[path.parent_pointer()];
  const std::string& key = path.back();
  if (variant.missing) {
    if (parent.is_array()) {
      parent.erase(std::stoul(key));
    } else {
      parent.erase(key);
    }
    return base.dump();
  }
  base[path] = variant.deep ? Json(kDeepMarker) : variant.value;
  std::string text = base.dump();
  if (variant.deep) {
    const std::string quoted = std::string("\"") + kDeepMarker + "\"";
    text.replace(text.find(quoted), quoted.size(),
                 std::string(100000, '[') + std::string(100000, ']'));
  }
  return text;
}

// What is wrong with `reply`, or "" if it is a proper SQS answer: 200 with a
// JSON object, or a 400 whose body names an SQS or protocol error type.
std::string Problem(const testing::HttpReply& reply) {
  if (reply.status == 0) return "no answer: " + reply.error;
  if (reply.status != 200 && reply.status != 400) {
    return "HTTP " + std::to_string(reply.status) + ": " +
           reply.body.substr(0, 300);
  }
  auto body = ParseJson(reply.body);
  if (!body.ok() || !body->is_object()) return "body is not a JSON object";
  if (reply.status == 200) return "";
  auto type = body->find("__type");
  auto message = body->find("message");
  if (type == body->end() || !type->is_string() || message == body->end() ||
      !message->is_string()) {
    return "error without __type and message: " + reply.body.substr(0, 300);
  }
  const std::string& t = type->get_ref<const std::string&>();
  if (t.rfind("com.amazonaws.sqs#", 0) != 0 &&
      t.rfind("com.amazon.coral.service#", 0) != 0) {
    return "unexpected __type " + t;
  }
  if (t.rfind("com.amazonaws.sqs#", 0) == 0 && reply.query_error.empty()) {
    return "SQS error " + t + " without x-amzn-query-error";
  }
  if (reply.body.size() > 4096) return "error body is too large";
  return "";
}

// Regression (issue 8, defect 2): every operation with every field missing,
// null, of the wrong type and of extreme size gets a proper 400 (or a 200
// where the input is in fact valid), and the server keeps serving. Before
// the fix a String attribute with "StringListValues": [] and no
// BinaryListValues read past the end of a map (ASan: heap-buffer-overflow),
// and a body nested 100,000 levels deep could exhaust the stack.
TEST_F(EndpointHttpTest, EveryOperationSurvivesEveryBadField) {
  SqsEndpointOptions options;
  options.max_body_bytes = 8 * 1024 * 1024;  // let the 2 MiB values through
  StartEndpoint(options);
  const std::string dlq =
      Ok("CreateQueue", {{"QueueName", "fuzz-dlq"}}).value("QueueUrl", "");
  const std::string arn_prefix = "arn:aws:sqs:us-east-1:000000000000:";
  const std::string redrive = Json{
      {"deadLetterTargetArn", arn_prefix + "fuzz-dlq"},
      {"maxReceiveCount", "5"}}.dump();
  const std::string url =
      Ok("CreateQueue",
         {{"QueueName", "fuzz"}, {"Attributes", {{"RedrivePolicy", redrive}}}})
          .value("QueueUrl", "");
  ASSERT_FALSE(url.empty());
  ASSERT_FALSE(dlq.empty());
  Ok("SendMessage", {{"QueueUrl", url}, {"MessageBody", "seed"}});
  // Receipt handles stay valid through the test (visibility 12 h).
  Json got =
      Ok("ReceiveMessage", {{"QueueUrl", url}, {"VisibilityTimeout", 43200}});
  ASSERT_TRUE(got.contains("Messages"));
  const std::string handle = got["Messages"][0]["ReceiptHandle"];

  const Json attributes = {
      {"s",
       {{"DataType", "String"},
        {"StringValue", "v"},
        {"StringListValues", Json::array()},
        {"BinaryListValues", Json::array()}}},
      {"n", {{"DataType", "Number"}, {"StringValue", "1"}}},
      {"b", {{"DataType", "Binary"}, {"BinaryValue", "AAEC"}}}};
  const std::vector<std::pair<std::string, Json>> requests = {
      {"CreateQueue",
       {{"QueueName", "fuzz-created"},
        {"Attributes", {{"VisibilityTimeout", "30"}, {"DelaySeconds", "0"}}}}},
      {"GetQueueUrl",
       {{"QueueName", "fuzz"}, {"QueueOwnerAWSAccountId", "000000000000"}}},
      {"ListQueues",
       {{"QueueNamePrefix", "fuzz"}, {"MaxResults", 10}, {"NextToken", "a"}}},
      {"GetQueueAttributes", {{"QueueUrl", url}, {"AttributeNames", {"All"}}}},
      {"SetQueueAttributes",
       {{"QueueUrl", url},
        {"Attributes",
         {{"VisibilityTimeout", "30"}, {"RedrivePolicy", redrive}}}}},
      {"SendMessage",
       {{"QueueUrl", url},
        {"MessageBody", "body"},
        {"DelaySeconds", 0},
        {"MessageAttributes", attributes}}},
      {"SendMessageBatch",
       {{"QueueUrl", url},
        {"Entries",
         {{{"Id", "e1"},
           {"MessageBody", "body"},
           {"DelaySeconds", 0},
           {"MessageAttributes", attributes}}}}}},
      {"ReceiveMessage",
       {{"QueueUrl", url},
        {"MaxNumberOfMessages", 1},
        {"WaitTimeSeconds", 0},
        {"VisibilityTimeout", 0},
        {"AttributeNames", {"All"}},
        {"MessageSystemAttributeNames", {"All"}},
        {"MessageAttributeNames", {"All"}}}},
      {"ChangeMessageVisibility",
       {{"QueueUrl", url},
        {"ReceiptHandle", handle},
        {"VisibilityTimeout", 43200}}},
      {"ChangeMessageVisibilityBatch",
       {{"QueueUrl", url},
        {"Entries",
         {{{"Id", "e1"},
           {"ReceiptHandle", handle},
           {"VisibilityTimeout", 43200}}}}}},
      {"DeleteMessage", {{"QueueUrl", url}, {"ReceiptHandle", "not-a-handle"}}},
      {"DeleteMessageBatch",
       {{"QueueUrl", url},
        {"Entries", {{{"Id", "e1"}, {"ReceiptHandle", "not-a-handle"}}}}}},
      {"ListDeadLetterSourceQueues",
       {{"QueueUrl", dlq}, {"MaxResults", 10}, {"NextToken", "a"}}},
      {"StartMessageMoveTask",
       {{"SourceArn", arn_prefix + "fuzz-dlq"},
        {"DestinationArn", arn_prefix + "fuzz"},
        {"MaxNumberOfMessagesPerSecond", 10}}},
      {"ListMessageMoveTasks",
       {{"SourceArn", arn_prefix + "fuzz-dlq"}, {"MaxResults", 10}}},
      {"PurgeQueue", {{"QueueUrl", dlq}}},
      {"DeleteQueue", {{"QueueUrl", url + "-absent"}}},
      {"TagQueue", {{"QueueUrl", url}, {"Tags", {{"k", "v"}}}}},
  };
  const std::vector<Variant> variants = Variants();
  std::vector<std::string> problems;
  int sent = 0;
  for (const auto& [op, base] : requests) {
    std::vector<Json::json_pointer> paths;
    Paths(base, Json::json_pointer(), paths);
    for (const auto& path : paths) {
      for (const Variant& variant : variants) {
        testing::HttpReply reply =
            PostSqs(port(), op, Spoil(base, path, variant));
        ++sent;
        if (std::string p = Problem(reply); !p.empty()) {
          problems.push_back(op + " " + path.to_string() + " " + variant.name +
                             ": " + p);
        }
      }
    }
    // The whole body spoiled, too.
    for (const std::string& body :
         {std::string(), std::string("null"), std::string("[]"),
          std::string("\"x\""), std::string("{"), std::string(100000, '{'),
          std::string(100000, '[') + std::string(100000, ']')}) {
      testing::HttpReply reply = PostSqs(port(), op, body);
      if (std::string p = Problem(reply); !p.empty()) {
        problems.push_back(op + " whole body " + body.substr(0, 10) + ": " + p);
      }
    }
    // Still serving.
    testing::HttpReply alive = PostSqs(port(), "ListQueues", "{}");
    ASSERT_EQ(alive.status, 200) << "after " << op << ": " << alive.error;
  }
  EXPECT_GT(sent, 1500);
  for (size_t i = 0; i < problems.size() && i < 30; ++i) {
    ADD_FAILURE() << problems[i];
  }
  EXPECT_TRUE(problems.empty()) << problems.size() << " bad answers";
}

// ---- idle and slow clients ----

// Regression (issue 8, defect 11): connections that sent nothing held every
// slot for two minutes and real clients waited in the backlog.
TEST_F(EndpointHttpTest, IdleConnectionsDoNotLockOutClientsAndTimeOut) {
  SqsEndpointOptions options;
  options.max_connections = 256;
  options.request_timeout_seconds = 2;
  StartEndpoint(options);
  boost::asio::io_context ioc;
  std::vector<boost::asio::ip::tcp::socket> idle;
  for (int i = 0; i < 300; ++i) idle.push_back(testing::Connect(ioc, port()));

  const auto start = Clock::now();
  testing::HttpReply reply = PostSqs(port(), "ListQueues", "{}", 10);
  EXPECT_EQ(reply.status, 200) << reply.error;
  EXPECT_LT(SecondsSince(start), 1.0);

  // Every idle connection is closed: evicted for the client above, or after
  // the request timeout. (A read then sees EOF or a reset, not a timeout.)
  const auto closing = Clock::now();
  int closed = 0;
  for (auto& socket : idle) {
    char byte;
    boost::system::error_code ec;
    socket.read_some(boost::asio::buffer(&byte, 1), ec);
    if (ec == boost::asio::error::eof ||
        ec == boost::asio::error::connection_reset) {
      ++closed;
    }
  }
  EXPECT_EQ(closed, 300);
  EXPECT_LT(SecondsSince(closing), 2 + 3.0);
}

TEST_F(EndpointHttpTest, RequestThatArrivesTooSlowlyIsDropped) {
  SqsEndpointOptions options;
  options.request_timeout_seconds = 1;
  StartEndpoint(options);
  boost::asio::io_context ioc;
  auto socket = testing::Connect(ioc, port(), 10);
  // Headers start but never finish.
  boost::asio::write(socket,
                     boost::asio::buffer(std::string("POST / HTTP/1.1\r\n")));
  const auto start = Clock::now();
  char byte;
  boost::system::error_code ec;
  socket.read_some(boost::asio::buffer(&byte, 1), ec);
  EXPECT_EQ(ec, boost::asio::error::eof) << ec.message();
  EXPECT_LT(SecondsSince(start), 3.0);
}

TEST_F(EndpointHttpTest, LongPollOutlastsTheRequestTimeout) {
  SqsEndpointOptions options;
  options.request_timeout_seconds = 1;
  StartEndpoint(options);
  const std::string url =
      Ok("CreateQueue", {{"QueueName", "slow"}}).value("QueueUrl", "");
  const auto start = Clock::now();
  Json got = Ok("ReceiveMessage", {{"QueueUrl", url}, {"WaitTimeSeconds", 2}});
  EXPECT_GE(SecondsSince(start), 1.9);
  EXPECT_FALSE(got.contains("Messages"));
}

// ---- stopping ----

// Issue 8: Stop() waited for every open long poll (up to 20 s).
TEST_F(EndpointHttpTest, StopEndsLongPollsWithEmptyAnswersWithinASecond) {
  StartEndpoint();
  const std::string url =
      Ok("CreateQueue", {{"QueueName", "polled"}}).value("QueueUrl", "");
  std::vector<std::future<testing::HttpReply>> polls;
  for (int i = 0; i < 5; ++i) {
    polls.push_back(std::async(std::launch::async, [this, url] {
      return PostSqs(port(), "ReceiveMessage",
                     Json{{"QueueUrl", url}, {"WaitTimeSeconds", 20}}.dump(),
                     30);
    }));
  }
  // Until all five wait in the store (bounded: they arrive in milliseconds).
  const auto arriving = Clock::now();
  while (endpoint_->InFlightRequests() < 5 && SecondsSince(arriving) < 10) {
    std::this_thread::yield();
  }
  ASSERT_EQ(endpoint_->InFlightRequests(), 5);
  const auto start = Clock::now();
  endpoint_->Stop();
  EXPECT_LT(SecondsSince(start), 1.0);
  for (auto& poll : polls) {
    testing::HttpReply reply = poll.get();
    EXPECT_EQ(reply.status, 200) << reply.error;
    EXPECT_EQ(reply.body, "{}");
  }
}

}  // namespace
}  // namespace cruncher::sqs
