// Unit tests for the SQS endpoint's pure parts and its API layer over a real
// LocalQueueStore in a temporary directory (no HTTP).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <latch>
#include <nlohmann/json.hpp>

#include "core/random_id.h"
#include "local/queue_store.h"
#include "sqs_endpoint/message_md5.h"
#include "sqs_endpoint/sigv4_verifier.h"
#include "sqs_endpoint/sqs_api.h"
#include "sqs_endpoint/worker_pool.h"

namespace cruncher::sqs {
namespace {

using Json = nlohmann::json;

TEST(MessageMd5, BodyAndAttributesMatchSqsAlgorithm) {
  // Expected digests computed independently with Python's hashlib over the
  // encoding SQS documents.
  EXPECT_EQ(Md5Hex(R"({"target": "127.0.0.1", "duration": "10"})"),
            "d85cbe9f00931700d2d198eda04b91db");
  MessageAttributes attrs = {
      {"reason", {"String", "bad json"}},
      {"count", {"Number", "3"}},
      {"blob", {"Binary", std::string("\x00\xff\x10", 3)}},
  };
  EXPECT_EQ(MessageAttributesMd5(attrs), "6965372ce8081ebbb4d2d8cc56aeb056");
  EXPECT_EQ(MessageAttributesMd5({}), "");
}

TEST(SigV4Verifier, AcceptsAwsTestSuiteVectorAndRejectsTampering) {
  // The "get-vanilla" case of the AWS SigV4 test suite.
  SigV4Verifier verifier(
      {{"AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}},
      "us-east-1", "service");
  SignedRequest req;
  req.method = "GET";
  req.target = "/";
  req.headers = {
      {"Host", "example.amazonaws.com"},
      {"X-Amz-Date", "20150830T123600Z"},
      {"Authorization",
       "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
       "aws4_request, SignedHeaders=host;x-amz-date, "
       "Signature="
       "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"}};
  const Millis signed_at = 1440938160000;  // 2015-08-30T12:36:00Z
  AuthResult ok = verifier.Verify(req, signed_at + 60'000);
  ASSERT_TRUE(ok.ok()) << ok.failure->code << ": " << ok.failure->message;
  EXPECT_EQ(ok.access_key, "AKIDEXAMPLE");

  EXPECT_EQ(verifier.Verify(req, signed_at + 16 * 60'000).failure->code,
            "RequestExpired");
  SignedRequest tampered = req;
  tampered.body = "x";
  EXPECT_EQ(verifier.Verify(tampered, signed_at).failure->code,
            "SignatureDoesNotMatch");
  SignedRequest unsigned_req = req;
  unsigned_req.headers.pop_back();
  EXPECT_EQ(verifier.Verify(unsigned_req, signed_at).failure->code,
            "MissingAuthenticationToken");
  SignedRequest other_key = req;
  other_key.headers.back().second.replace(
      other_key.headers.back().second.find("AKIDEXAMPLE"), 11, "AKIDUNKNOWN");
  EXPECT_EQ(verifier.Verify(other_key, signed_at).failure->code,
            "InvalidClientTokenId");
  SignedRequest garbled = req;
  garbled.headers.back().second = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE";
  EXPECT_EQ(verifier.Verify(garbled, signed_at).failure->code,
            "IncompleteSignature");
}

TEST(SigningRegion, ReadsTheCredentialScope) {
  EXPECT_EQ(SigningRegion("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-west-2/"
                          "sqs/aws4_request, SignedHeaders=host, Signature=00"),
            "us-west-2");
  EXPECT_EQ(SigningRegion("AWS4-HMAC-SHA256 Credential=AKID/20260101/"
                          "eu-central-1/sqs/aws4_request"),
            "eu-central-1");
  for (const char* bad :
       {"", "AWS4-HMAC-SHA256 Signature=00", "Credential=AKID/20260101",
        "Credential=AKID/20260101/US-WEST-2/sqs/aws4_request",
        "Credential=AKID/20260101//sqs/aws4_request",
        "Credential=AKID/20260101/us west/sqs/aws4_request"}) {
    EXPECT_EQ(SigningRegion(bad), std::nullopt) << bad;
  }
}

TEST(WorkerPool, RunsBlockingTasksConcurrently) {
  constexpr int kTasks = 8;
  std::latch all_started(kTasks);
  std::atomic<int> done{0};
  {
    WorkerPool pool(kTasks);
    for (int i = 0; i < kTasks; ++i) {
      ASSERT_TRUE(pool.Submit([&] {
        all_started.count_down();
        all_started.wait();  // deadlocks unless all run at once
        ++done;
      }));
    }
  }
  EXPECT_EQ(done.load(), kTasks);
}

class SqsApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("sqs-api-" + RandomHex(6));
    auto store = local::LocalQueueStore::Open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
    api_ = std::make_unique<SqsApi>(*store_, SqsApiOptions{});
  }
  void TearDown() override {
    api_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  ApiResponse Call(std::string_view op, const Json& in) {
    return api_->Handle(op, in.dump(), "localhost:9324");
  }
  Json Ok(std::string_view op, const Json& in) {
    ApiResponse r = Call(op, in);
    EXPECT_EQ(r.http_status, 200) << op << ": " << r.body;
    return Json::parse(r.body);
  }
  std::string CreateQueue(const std::string& name,
                          Json attributes = Json::object()) {
    return Ok("CreateQueue",
              {{"QueueName", name}, {"Attributes", attributes}})["QueueUrl"];
  }

  std::filesystem::path dir_;
  std::unique_ptr<local::LocalQueueStore> store_;
  std::unique_ptr<SqsApi> api_;
};

TEST_F(SqsApiTest, SendReceiveRoundTripsAttributesAndDigests) {
  std::string url = CreateQueue("tasks");
  EXPECT_EQ(url, "http://localhost:9324/000000000000/tasks");
  Json sent =
      Ok("SendMessage",
         {{"QueueUrl", url},
          {"MessageBody", "hello"},
          {"MessageAttributes",
           {{"blob", {{"DataType", "Binary"}, {"BinaryValue", "AP8Q"}}},
            {"n", {{"DataType", "Number.int"}, {"StringValue", "42"}}}}}});
  EXPECT_EQ(sent["MD5OfMessageBody"], Md5Hex("hello"));
  Json got = Ok("ReceiveMessage", {{"QueueUrl", url},
                                   {"MessageAttributeNames", {"All"}},
                                   {"MessageSystemAttributeNames", {"All"}}});
  ASSERT_EQ(got["Messages"].size(), 1u);
  const Json& m = got["Messages"][0];
  EXPECT_EQ(m["Body"], "hello");
  EXPECT_EQ(m["MessageAttributes"]["blob"]["BinaryValue"], "AP8Q");
  EXPECT_EQ(m["MD5OfMessageAttributes"], sent["MD5OfMessageAttributes"]);
  EXPECT_EQ(m["Attributes"]["ApproximateReceiveCount"], "1");
}

TEST_F(SqsApiTest, ErrorsCarryTypeAndQueryCode) {
  ApiResponse r =
      Call("SendMessage",
           {{"QueueUrl", "http://h/000000000000/nope"}, {"MessageBody", "x"}});
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.query_error, "AWS.SimpleQueueService.NonExistentQueue;Sender");
  EXPECT_EQ(Json::parse(r.body)["__type"],
            "com.amazonaws.sqs#QueueDoesNotExist");

  r = api_->Handle("ListQueues", "{not json", "h");
  EXPECT_EQ(Json::parse(r.body)["__type"],
            "com.amazon.coral.service#SerializationException");
  r = Call("Frobnicate", Json::object());
  EXPECT_EQ(r.error_code, "InvalidAction");
}

TEST_F(SqsApiTest, QueuesAreScopedByTheRequestRegion) {
  auto in_region = [&](std::string_view op, const Json& in,
                       std::string_view region) {
    ApiResponse r = api_->Handle(op, in.dump(), "h", region);
    EXPECT_EQ(r.http_status, 200) << op << ": " << r.body;
    return Json::parse(r.body);
  };
  std::string url = in_region("CreateQueue", {{"QueueName", "tasks"}},
                              "us-west-2")["QueueUrl"];
  EXPECT_EQ(url, "http://h/000000000000/tasks");
  EXPECT_EQ(in_region("GetQueueAttributes",
                      {{"QueueUrl", url}, {"AttributeNames", {"QueueArn"}}},
                      "us-west-2")["Attributes"]["QueueArn"],
            "arn:aws:sqs:us-west-2:000000000000:tasks");
  // Not a queue of the configured region, nor of another.
  EXPECT_FALSE(store_->GetQueue("tasks").ok());
  EXPECT_FALSE(Ok("ListQueues", Json::object()).contains("QueueUrls"));
  EXPECT_EQ(api_->Handle("ListQueues", "{}", "h", "us-east-2").body, "{}");
  EXPECT_EQ(in_region("ListQueues", Json::object(), "us-west-2")["QueueUrls"],
            Json::array({url}));
  // The configured region's queues are the store's own.
  CreateQueue("home");
  EXPECT_TRUE(store_->GetQueue("home").ok());
  EXPECT_EQ(in_region("ListQueues", Json::object(), "us-east-1")["QueueUrls"],
            Json::array({"http://h/000000000000/home"}));
}

TEST_F(SqsApiTest, BatchesReportPerEntryFailures) {
  std::string url = CreateQueue("tasks");
  ApiResponse dup =
      Call("SendMessageBatch", {{"QueueUrl", url},
                                {"Entries",
                                 {{{"Id", "a"}, {"MessageBody", "1"}},
                                  {{"Id", "a"}, {"MessageBody", "2"}}}}});
  EXPECT_EQ(dup.error_code, "AWS.SimpleQueueService.BatchEntryIdsNotDistinct");
  Json sent =
      Ok("SendMessageBatch",
         {{"QueueUrl", url},
          {"Entries",
           {{{"Id", "a"}, {"MessageBody", "1"}},
            {{"Id", "b"}, {"MessageBody", "2"}, {"DelaySeconds", 901}}}}});
  EXPECT_EQ(sent["Successful"].size(), 1u);
  ASSERT_EQ(sent["Failed"].size(), 1u);
  EXPECT_EQ(sent["Failed"][0]["Id"], "b");
  EXPECT_EQ(sent["Failed"][0]["Code"], "InvalidParameterValue");

  Json got = Ok("ReceiveMessage", {{"QueueUrl", url}});
  std::string handle = got["Messages"][0]["ReceiptHandle"];
  Json deleted = Ok("DeleteMessageBatch",
                    {{"QueueUrl", url},
                     {"Entries",
                      {{{"Id", "ok"}, {"ReceiptHandle", handle}},
                       {{"Id", "bad"}, {"ReceiptHandle", "garbage"}}}}});
  EXPECT_EQ(deleted["Successful"][0]["Id"], "ok");
  EXPECT_EQ(deleted["Failed"][0]["Code"], "ReceiptHandleIsInvalid");
}

}  // namespace
}  // namespace cruncher::sqs
