#include "kube/events.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fakes/fake_clock.h"
#include "fakes/fake_http_transport.h"

namespace cruncher::kube {
namespace {

using testing::FakeClock;
using testing::FakeHttpTransport;
using ::testing::HasSubstr;

class EventRecorderTest : public ::testing::Test {
 protected:
  EventRecorder& Recorder(FakeHttpTransport::Handler handler) {
    transport_ = std::make_shared<FakeHttpTransport>(std::move(handler));
    ClusterConfig config;
    config.server = "https://kube.test";
    client_ = RestClient::Create(config,
                                 std::make_shared<StaticCredentialProvider>(""),
                                 transport_, clock_)
                  .value();
    recorder_ = std::make_unique<EventRecorder>(*client_, clock_, "cruncher",
                                                "host-1_ab12");
    return *recorder_;
  }
  nlohmann::json Sent(int n = 0) {
    return nlohmann::json::parse(transport_->requests().at(n).body);
  }

  FakeClock clock_;
  std::shared_ptr<FakeHttpTransport> transport_;
  std::unique_ptr<RestClient> client_;
  std::unique_ptr<EventRecorder> recorder_;
  const JobRef job_{"team-a", "demo-7f3a", "0b5c-uid"};
};

TEST_F(EventRecorderTest, PostsAnEventAboutTheJob) {
  EventRecorder& recorder = Recorder([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(201, R"({"kind":"Event"})");
  });
  ASSERT_TRUE(
      recorder.Record(job_, "Requeued", "sent back to queue tasks").ok());
  const net::HttpRequest request = transport_->requests().at(0);
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, "https://kube.test/api/v1/namespaces/team-a/events");
  const nlohmann::json event = Sent();
  EXPECT_EQ(event["apiVersion"], "v1");
  EXPECT_EQ(event["kind"], "Event");
  EXPECT_EQ(event["metadata"]["generateName"], "demo-7f3a.");
  EXPECT_EQ(event["metadata"]["namespace"], "team-a");
  EXPECT_EQ(event["involvedObject"], nlohmann::json({{"apiVersion", "batch/v1"},
                                                     {"kind", "Job"},
                                                     {"name", "demo-7f3a"},
                                                     {"namespace", "team-a"},
                                                     {"uid", "0b5c-uid"}}));
  EXPECT_EQ(event["reason"], "Requeued");
  EXPECT_EQ(event["message"], "sent back to queue tasks");
  EXPECT_EQ(event["type"], "Normal");
  EXPECT_EQ(event["source"], nlohmann::json({{"component", "cruncher"},
                                             {"host", "host-1_ab12"}}));
  EXPECT_EQ(event["reportingComponent"], "cruncher");
  EXPECT_EQ(event["reportingInstance"], "host-1_ab12");
  EXPECT_EQ(event["firstTimestamp"], FormatRfc3339(clock_.NowMillis()));
  EXPECT_EQ(event["lastTimestamp"], event["firstTimestamp"]);
  EXPECT_EQ(event["count"], 1);
}

TEST_F(EventRecorderTest, AWarningSaysSo) {
  EventRecorder& recorder = Recorder([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(201, "{}");
  });
  ASSERT_TRUE(
      recorder.Record(job_, "RequeueFailed", "x", EventType::kWarning).ok());
  EXPECT_EQ(Sent()["type"], "Warning");
}

TEST_F(EventRecorderTest, AFailureIsReturnedOnceNamingTheEventAndJob) {
  EventRecorder& recorder = Recorder([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(
        403, R"({"kind":"Status","reason":"Forbidden","message":"events is )"
             R"(forbidden: User \"x\" cannot create resource \"events\""})");
  });
  Status status = recorder.Record(job_, "GarbageCollected", "older than 1h");
  EXPECT_EQ(status.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(status.message(),
              HasSubstr("event GarbageCollected on Job team-a/demo-7f3a: "
                        "POST /api/v1/namespaces/team-a/events: 403 "
                        "Forbidden: events is forbidden"));
  // Best effort: a POST is not retried, even after a 503.
  Recorder([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(503, "");
  });
  EXPECT_EQ(recorder_->Record(job_, "Requeued", "m").code(),
            StatusCode::kUnavailable);
  EXPECT_EQ(transport_->count(), 1);
}

TEST_F(EventRecorderTest, RefusesWhatCannotNameAJob) {
  EventRecorder& recorder = Recorder([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(201, "{}");
  });
  EXPECT_EQ(recorder.Record({"team-a", "", "u"}, "Requeued", "m").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(recorder.Record({"../x", "j", "u"}, "Requeued", "m").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(recorder.Record(job_, "", "m").code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(transport_->count(), 0);
}

TEST_F(EventRecorderTest, ALongMessageIsCutAtACharacterBoundary) {
  // 1021 ASCII bytes, then 'é' (2 bytes) across the cut at 1021.
  std::string message(1020, 'a');
  message += "\xc3\xa9";
  message += std::string(100, 'b');
  nlohmann::json event = BuildJobEvent(job_, "Requeued", message,
                                       EventType::kNormal, "cruncher", "", 0);
  const std::string sent = event["message"];
  EXPECT_EQ(sent, std::string(1020, 'a') + "...");
  EXPECT_FALSE(event.contains("reportingInstance"));
  EXPECT_FALSE(event["source"].contains("host"));
  const std::string exact(kMaxEventMessageBytes, 'c');
  EXPECT_EQ(BuildJobEvent(job_, "R", exact, EventType::kNormal, "c", "",
                          0)["message"],
            exact);
}

TEST_F(EventRecorderTest, InvalidUtf8InTheMessageIsReplacedNotThrown) {
  EventRecorder& recorder = Recorder([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(201, "{}");
  });
  ASSERT_TRUE(recorder.Record(job_, "Requeued", "bad \xff byte").ok());
  EXPECT_EQ(Sent()["message"], "bad \xef\xbf\xbd byte");
}

}  // namespace
}  // namespace cruncher::kube
