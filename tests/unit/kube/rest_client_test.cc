#include "kube/rest_client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "core/log.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_http_transport.h"

namespace cruncher::kube {
namespace {

using ::testing::ElementsAre;
using testing::FakeClock;
using testing::FakeHttpTransport;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::RequestHeader;

// Hands out "token-1", then after each Invalidate the next number.
class CountingCredentials final : public CredentialProvider {
 public:
  Result<Credentials> Get() override {
    ++gets;
    return Credentials{
        "token-" + std::to_string(generation.load()), "", "", {}};
  }
  void Invalidate() override {
    ++invalidations;
    ++generation;
  }
  std::atomic<int> gets{0};
  std::atomic<int> invalidations{0};
  std::atomic<int> generation{1};
};

constexpr const char* kJobs = "/apis/batch/v1/namespaces/ns/jobs";

class RestClientTest : public ::testing::Test {
 protected:
  RestClientTest() {
    // No rate limit in the way unless a test sets one.
    options_.qps = 1000;
    options_.burst = 1000;
    options_.max_retries = 3;
  }

  // A client over a fake transport answering with `handler`; the fake
  // clock's time of each request is kept in times_.
  RestClient& Client(FakeHttpTransport::Handler handler) {
    transport_ = std::make_shared<FakeHttpTransport>(
        [this, handler](const net::HttpRequest& request, int n) {
          {
            std::lock_guard<std::mutex> lock(mu_);
            times_.push_back(clock_.NowMillis() - start_);
          }
          return handler(request, n);
        });
    ClusterConfig config;
    config.server = "https://kube.test:6443";
    config.namespace_name = "ns";
    config.source = "test config";
    auto client =
        RestClient::Create(config, credentials_, transport_, clock_, options_);
    EXPECT_TRUE(client.ok()) << client.status().ToString();
    client_ = std::move(*client);
    return *client_;
  }

  std::vector<Millis> Times() {
    std::lock_guard<std::mutex> lock(mu_);
    return times_;
  }

  FakeClock clock_;
  const Millis start_ = clock_.NowMillis();
  RestOptions options_;
  std::shared_ptr<CountingCredentials> credentials_ =
      std::make_shared<CountingCredentials>();
  std::shared_ptr<FakeHttpTransport> transport_;
  std::unique_ptr<RestClient> client_;
  std::mutex mu_;
  std::vector<Millis> times_;  // guarded by mu_
};

const char* kStatus503 =
    R"({"kind":"Status","apiVersion":"v1","status":"Failure",)"
    R"("message":"the server is shutting down","reason":"ServiceUnavailable",)"
    R"("code":503})";

TEST_F(RestClientTest, SendsTheRequestWithCredentialsAndParsesTheBody) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(201, R"({"kind":"Job"})");
  });
  auto body = client.Do({"POST", kJobs, R"({"kind":"Job"})"});
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_EQ(body->value("kind", ""), "Job");
  const net::HttpRequest request = transport_->requests().at(0);
  EXPECT_EQ(request.method, "POST");
  EXPECT_EQ(request.url, std::string("https://kube.test:6443") + kJobs);
  EXPECT_EQ(request.body, R"({"kind":"Job"})");
  EXPECT_EQ(RequestHeader(request, "Authorization"), "Bearer token-1");
  EXPECT_EQ(RequestHeader(request, "Content-Type"), "application/json");
  EXPECT_EQ(RequestHeader(request, "Accept"), "application/json");
  EXPECT_EQ(request.timeout_ms, options_.request_timeout_ms);
  EXPECT_EQ(client.namespace_name(), "ns");
}

TEST_F(RestClientTest, AnEmpty2xxBodyIsAnEmptyObject) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(200, "");
  });
  auto body = client.Do({"DELETE", std::string(kJobs) + "/j", ""});
  ASSERT_TRUE(body.ok());
  EXPECT_EQ(*body, nlohmann::json::object());
  // No body, no Content-Type.
  EXPECT_EQ(RequestHeader(transport_->requests().at(0), "Content-Type"), "");
}

TEST_F(RestClientTest, A429WithRetryAfterWaitsThatLongThenSucceeds) {
  RestClient& client = Client([](const net::HttpRequest&, int n) {
    if (n == 0) {
      return FakeHttpTransport::Reply(429, R"({"reason":"TooManyRequests"})",
                                      {{"retry-after", "3"}});
    }
    return FakeHttpTransport::Reply(201, R"({"kind":"Job"})");
  });
  // A POST too: the server did not act on a request it throttled.
  auto body = client.Do({"POST", kJobs, "{}"});
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_THAT(Times(), ElementsAre(0, 3000));
}

TEST_F(RestClientTest, A429WithoutRetryAfterBacksOffExponentially) {
  RestClient& client = Client([](const net::HttpRequest&, int n) {
    if (n < 2) return FakeHttpTransport::Reply(429, "");
    return FakeHttpTransport::Reply(200, "{}");
  });
  ASSERT_TRUE(client.Do({"GET", kJobs, ""}).ok());
  // 250 ms, then 500 ms (RestOptions::retry_backoff).
  EXPECT_THAT(Times(), ElementsAre(0, 250, 750));
}

TEST_F(RestClientTest, ARetryAfterBeyondTheCapIsCut) {
  options_.max_retry_after = 10'000;
  RestClient& client = Client([](const net::HttpRequest&, int n) {
    if (n == 0)
      return FakeHttpTransport::Reply(429, "", {{"retry-after", "600"}});
    return FakeHttpTransport::Reply(200, "{}");
  });
  ASSERT_TRUE(client.Do({"GET", kJobs, ""}).ok());
  EXPECT_THAT(Times(), ElementsAre(0, 10'000));
}

TEST_F(RestClientTest, A429ForeverEndsThrottledAfterMaxRetries) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(429, "", {{"retry-after", "1"}});
  });
  ApiError error;
  auto body = client.Do({"GET", kJobs, ""}, {}, &error);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kThrottled);
  // No body: the status alone, no dangling ": ".
  EXPECT_EQ(body.status().message(),
            std::string("GET ") + kJobs + ": 429 TooManyRequests");
  EXPECT_EQ(error.http_status, 429);
  EXPECT_EQ(transport_->count(), 1 + options_.max_retries);
}

TEST_F(RestClientTest, APostAnswered503IsNotRetried) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(503, kStatus503);
  });
  ApiError error;
  auto body = client.Do({"POST", kJobs, "{}"}, {}, &error);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(body.status().message(),
            std::string("POST ") + kJobs +
                ": 503 ServiceUnavailable: the server is shutting down");
  EXPECT_EQ(error.http_status, 503);
  EXPECT_EQ(transport_->count(), 1);
}

TEST_F(RestClientTest, AGetAnswered503IsRetriedUpToMaxRetriesThenFails) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(503, kStatus503);
  });
  ApiError error;
  auto body = client.Do({"GET", kJobs, ""}, {}, &error);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("503 ServiceUnavailable"));
  EXPECT_EQ(error.http_status, 503);
  EXPECT_EQ(error.reason, "ServiceUnavailable");
  EXPECT_THAT(Times(), ElementsAre(0, 250, 750, 1750));
}

TEST_F(RestClientTest, AGetAnswered503ThenOkSucceeds) {
  RestClient& client = Client([](const net::HttpRequest&, int n) {
    if (n == 0) return FakeHttpTransport::Reply(503, kStatus503);
    return FakeHttpTransport::Reply(200, R"({"items":[]})");
  });
  auto body = client.Do({"GET", kJobs, ""});
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_TRUE(body->contains("items"));
  EXPECT_EQ(transport_->count(), 2);
}

TEST_F(RestClientTest, APostTransportFailureIsNotRetried) {
  RestClient& client = Client([](const net::HttpRequest& request, int) {
    return FakeHttpTransport::ConnectionFailure(request);
  });
  ApiError error{500, "x", {}};
  auto body = client.Do({"POST", kJobs, "{}"}, {}, &error);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(), HasSubstr("Connection reset"));
  EXPECT_EQ(error.http_status, 0);  // no answer: the outcome is unknown
  EXPECT_EQ(transport_->count(), 1);
}

TEST_F(RestClientTest, AGetTransportFailureIsRetried) {
  RestClient& client = Client([](const net::HttpRequest& request, int n) {
    if (n < 2) return FakeHttpTransport::ConnectionFailure(request);
    return FakeHttpTransport::Reply(200, "{}");
  });
  ASSERT_TRUE(client.Do({"GET", kJobs, ""}).ok());
  EXPECT_THAT(Times(), ElementsAre(0, 250, 750));
}

// A server that never answers: one request timeout, not one per retry
// (`jobs` took 5 x 30 s).
TEST_F(RestClientTest, ATimedOutGetIsNotRetried) {
  RestClient& client = Client([](const net::HttpRequest& request, int) {
    return FakeHttpTransport::ConnectionFailure(request, /*timed_out=*/true);
  });
  auto body = client.Do({"GET", kJobs, ""});
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(transport_->count(), 1);
}

// A certificate that does not verify, a CA file that cannot be read: the
// same request fails the same way, so it fails at once.
TEST_F(RestClientTest, APermanentTransportFailureIsNotRetried) {
  RestClient& client = Client([](const net::HttpRequest& request, int) {
    net::HttpOutcome out;
    out.status = Unavailable(request.method + " " + request.url +
                             ": SSL certificate problem: unable to get local "
                             "issuer certificate (curl error 60)");
    out.permanent = true;
    return out;
  });
  auto body = client.Do({"GET", kJobs, ""});
  EXPECT_EQ(body.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(body.status().message(), HasSubstr("SSL certificate problem"));
  EXPECT_EQ(transport_->count(), 1);
}

TEST_F(RestClientTest, AnUnreadableCaFileFailsAtCreateNamingIt) {
  ClusterConfig config;
  config.server = "https://kube.test:6443";
  config.source = "context \"x\" of kubeconfig /k";
  config.certificate_authority.file = "/nonexistent/ca.crt";
  auto client = RestClient::Create(
      config, credentials_,
      std::make_shared<FakeHttpTransport>([](const net::HttpRequest& r, int) {
        return FakeHttpTransport::ConnectionFailure(r);
      }),
      clock_, options_);
  ASSERT_FALSE(client.ok());
  EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(client.status().message(),
              HasSubstr("context \"x\" of kubeconfig /k: "
                        "certificate-authority: /nonexistent/ca.crt"));
}

TEST_F(RestClientTest, QpsMustBeAFiniteNumber) {
  ClusterConfig config;
  config.server = "https://kube.test:6443";
  for (double qps :
       {std::nan(""), std::numeric_limits<double>::infinity(), 0.0, -1.0}) {
    RestOptions options;
    options.qps = qps;
    auto client =
        RestClient::Create(config, credentials_, nullptr, clock_, options);
    EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument) << qps;
  }
}

// While the server does not answer, the operator is told, at most once per
// 10 s per reason, whether the request is retried or not.
TEST_F(RestClientTest, AServerNotAnsweringIsLoggedRateLimited) {
  std::vector<nlohmann::json> lines;
  std::mutex lines_mu;
  SetLogSink([&](const std::string& line) {
    std::lock_guard<std::mutex> lock(lines_mu);
    lines.push_back(nlohmann::json::parse(line));
  });
  RestClient& client = Client([](const net::HttpRequest& request, int) {
    return FakeHttpTransport::ConnectionFailure(request,
                                                request.method == "POST");
  });
  // A GET: 4 attempts within 2 s, one line (retried).
  EXPECT_FALSE(client.Do({"GET", kJobs, ""}).ok());
  // Creates timing out, not retried: one line for the first, then quiet.
  for (int i = 0; i < 5; ++i) {
    EXPECT_FALSE(client.Do({"POST", kJobs, "{}"}).ok());
  }
  clock_.Advance(10'000);
  EXPECT_FALSE(client.Do({"POST", kJobs, "{}"}).ok());
  SetLogSink(nullptr);
  std::vector<nlohmann::json> warnings;
  for (const auto& line : lines) {
    if (line.value("event", "") == "kube_api_not_answering") {
      warnings.push_back(line);
    }
  }
  ASSERT_EQ(warnings.size(), 3u) << nlohmann::json(lines).dump();
  EXPECT_EQ(warnings[0].value("level", ""), "warn");
  EXPECT_EQ(warnings[0].value("reason", ""), "connection");
  EXPECT_EQ(warnings[0].value("retry_in_ms", 0), 250);
  EXPECT_THAT(warnings[0].value("message", ""),
              HasSubstr("kubernetes API at https://kube.test:6443 not "
                        "answering: "));
  EXPECT_EQ(warnings[0].value("request", ""), std::string("GET ") + kJobs);
  EXPECT_EQ(warnings[1].value("reason", ""), "timeout");
  EXPECT_FALSE(warnings[1].value("retrying", true));
  EXPECT_EQ(warnings[2].value("reason", ""), "timeout");
  EXPECT_EQ(warnings[2].value("suppressed", 0), 4);
}

TEST_F(RestClientTest, AFailureAfterTheHeadersIsNotRetried) {
  // The server answered (a body over the limit, a connection cut
  // mid-body): asking again would meet the same answer.
  RestClient& client = Client([](const net::HttpRequest& request, int) {
    net::HttpOutcome out = FakeHttpTransport::ConnectionFailure(request);
    out.response.status = 200;
    return out;
  });
  EXPECT_FALSE(client.Do({"GET", kJobs, ""}).ok());
  EXPECT_EQ(transport_->count(), 1);
}

TEST_F(RestClientTest, A401InvalidatesTheCredentialsOnceAndRetriesOnce) {
  RestClient& client = Client([](const net::HttpRequest& request, int) {
    if (RequestHeader(request, "Authorization") == "Bearer token-1") {
      return FakeHttpTransport::Reply(401, R"({"reason":"Unauthorized"})");
    }
    return FakeHttpTransport::Reply(200, "{}");
  });
  // A POST too: a 401 means the request was not acted on.
  ASSERT_TRUE(client.Do({"POST", kJobs, "{}"}).ok());
  EXPECT_EQ(credentials_->invalidations, 1);
  const auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(RequestHeader(requests[1], "Authorization"), "Bearer token-2");
}

TEST_F(RestClientTest, A401AgainAfterReauthenticatingIsTheError) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(
        401,
        R"({"kind":"Status","reason":"Unauthorized","message":"Unauthorized"})");
  });
  ApiError error;
  auto body = client.Do({"GET", kJobs, ""}, {}, &error);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(error.http_status, 401);
  EXPECT_EQ(credentials_->invalidations, 1);
  EXPECT_EQ(transport_->count(), 2);
}

TEST_F(RestClientTest, AnErrorStatusBodyGivesHttpStatusReasonAndMessage) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(
        409,
        R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
        R"("message":"jobs.batch \"demo-1\" already exists",)"
        R"("reason":"AlreadyExists","details":{"name":"demo-1",)"
        R"("group":"batch","kind":"jobs"},"code":409})");
  });
  ApiError error;
  auto body = client.Do({"POST", kJobs, "{}"}, {}, &error);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ(body.status().message(),
            std::string("POST ") + kJobs +
                ": 409 AlreadyExists: jobs.batch \"demo-1\" already exists");
  EXPECT_EQ(error.http_status, 409);
  EXPECT_EQ(error.reason, "AlreadyExists");
}

TEST_F(RestClientTest, StatusCodesFollowTheHttpStatusAndReason) {
  EXPECT_EQ(StatusCodeForHttp(409, "Conflict"),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusCodeForHttp(409, "AlreadyExists"),
            StatusCode::kAlreadyExists);
  EXPECT_EQ(StatusCodeForHttp(422, "Invalid"), StatusCode::kInvalidArgument);
  EXPECT_EQ(StatusCodeForHttp(404, "NotFound"), StatusCode::kNotFound);
  EXPECT_EQ(StatusCodeForHttp(410, "Expired"), StatusCode::kNotFound);
  EXPECT_EQ(StatusCodeForHttp(403, "Forbidden"),
            StatusCode::kFailedPrecondition);
  EXPECT_EQ(StatusCodeForHttp(429, ""), StatusCode::kThrottled);
  EXPECT_EQ(StatusCodeForHttp(504, ""), StatusCode::kUnavailable);
}

TEST_F(RestClientTest, ANonJsonErrorBodyGivesABoundedExcerpt) {
  std::string html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\n";
  html += std::string(100'000, 'x');
  RestClient& client = Client([html](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(502, html);
  });
  ApiError error;
  auto body = client.Do({"POST", kJobs, "{}"}, {}, &error);
  ASSERT_FALSE(body.ok());
  const std::string& message = body.status().message();
  EXPECT_THAT(message, HasSubstr("502 HTTP502: <html>  <head><title>502 Bad "
                                 "Gateway</title></head> xxx"));
  EXPECT_LT(message.size(), 300u);
  EXPECT_THAT(message, Not(HasSubstr("\n")));
  EXPECT_EQ(error.reason, "HTTP502");
}

TEST_F(RestClientTest, ANonJson2xxBodyIsAnError) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(200, "<html>a login page</html>");
  });
  auto body = client.Do({"GET", kJobs, ""});
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(body.status().message(),
              HasSubstr(std::string("GET ") + kJobs +
                        ": a response body that is not JSON"));
  EXPECT_EQ(transport_->count(), 1);
}

TEST_F(RestClientTest, TheTokenBucketMakesTheRequestAfterTheBurstWait) {
  options_.qps = 5;
  options_.burst = 3;
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(200, "{}");
  });
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(client.Do({"GET", kJobs, ""}).ok());
  // The burst goes at once, then one every 1/qps = 200 ms.
  EXPECT_THAT(Times(), ElementsAre(0, 0, 0, 200, 400));
}

TEST_F(RestClientTest, RetriesTakeTokensToo) {
  options_.qps = 1;
  options_.burst = 1;
  RestClient& client = Client([](const net::HttpRequest&, int n) {
    if (n == 0) return FakeHttpTransport::Reply(503, kStatus503);
    return FakeHttpTransport::Reply(200, "{}");
  });
  ASSERT_TRUE(client.Do({"GET", kJobs, ""}).ok());
  // The 250 ms backoff, then the bucket's refill to 1 s.
  EXPECT_THAT(Times(), ElementsAre(0, 1000));
}

TEST_F(RestClientTest, AStopDuringABackoffReturnsPromptly) {
  clock_.set_auto_advance(false);
  options_.retry_backoff = {60'000, 60'000};
  // A 429: the stop, not the throttling, is what the caller must see.
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(429, "", {{"retry-after", "30"}});
  });
  std::stop_source stop;
  Result<nlohmann::json> result = nlohmann::json();
  std::thread caller([&] {
    result = client.Do({"GET", kJobs, ""}, stop.get_token());
  });
  // The first answer came and the client sleeps its backoff.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (clock_.sleepers() == 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ASSERT_EQ(clock_.sleepers(), 1);
  const auto stopped_at = std::chrono::steady_clock::now();
  stop.request_stop();
  caller.join();
  EXPECT_LT(std::chrono::steady_clock::now() - stopped_at,
            std::chrono::seconds(1));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(result.status().message(),
            std::string("GET ") + kJobs +
                ": stopped while waiting to retry after 429");
  EXPECT_EQ(transport_->count(), 1);
}

TEST_F(RestClientTest, AStopBeforeTheRequestSendsNothing) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(200, "{}");
  });
  std::stop_source stop;
  stop.request_stop();
  auto body = client.Do({"GET", kJobs, ""}, stop.get_token());
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(transport_->count(), 0);
}

TEST_F(RestClientTest, WithQueryEscapesValues) {
  EXPECT_EQ(WithQuery("/api/v1/pods",
                      {{"labelSelector", "a=b,c in (d)"}, {"limit", "5"}}),
            "/api/v1/pods?labelSelector=a%3Db%2Cc%20in%20%28d%29&limit=5");
  EXPECT_EQ(WithQuery("/x?watch=1", {{"resourceVersion", "12"}}),
            "/x?watch=1&resourceVersion=12");
}

// Stream.

std::vector<nlohmann::json> Collect(RestClient& client, Status& status,
                                    const std::string& path = "/w?watch=1") {
  std::vector<nlohmann::json> objects;
  status = client.Stream({"GET", path, ""}, [&](nlohmann::json object) {
    objects.push_back(std::move(object));
    return true;
  });
  return objects;
}

TEST_F(RestClientTest, StreamSplitsLinesAcrossChunksAndSkipsBlankLines) {
  const std::string text = R"({"type":"ADDED","object":{"n":1}})"
                           "\n\n"
                           R"({"type":"MODIFIED","object":{"n":2}})"
                           "\n\n\n"
                           R"({"type":"BOOKMARK","object":{"n":3}})"
                           "\n";
  // Every chunking: whole, and one byte at a time.
  for (std::size_t size : {text.size(), std::size_t{1}, std::size_t{7}}) {
    std::vector<std::string> pieces;
    for (std::size_t i = 0; i < text.size(); i += size) {
      pieces.push_back(text.substr(i, size));
    }
    RestClient& client = Client([pieces](const net::HttpRequest& request, int) {
      return FakeHttpTransport::Streamed(request, pieces);
    });
    Status status;
    auto objects = Collect(client, status);
    ASSERT_TRUE(status.ok()) << status.ToString();
    ASSERT_EQ(objects.size(), 3u) << "chunk size " << size;
    EXPECT_EQ(objects[0].value("type", ""), "ADDED");
    EXPECT_EQ(objects[1]["object"].value("n", 0), 2);
    EXPECT_EQ(objects[2].value("type", ""), "BOOKMARK");
    // A watch has no whole-exchange timeout.
    EXPECT_EQ(transport_->requests().at(0).timeout_ms, 0);
  }
}

TEST_F(RestClientTest, StreamClosedByTheHandlerIsOk) {
  RestClient& client = Client([](const net::HttpRequest& request, int) {
    return FakeHttpTransport::Streamed(request, {"{\"n\":1}\n{\"n\":2}\n"});
  });
  int seen = 0;
  Status status = client.Stream({"GET", "/w?watch=1", ""}, [&](nlohmann::json) {
    ++seen;
    return false;
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(seen, 1);
}

TEST_F(RestClientTest, StreamRefusesAnOversizedLine) {
  // 20 MiB without a newline, in 1 MiB pieces: refused at the 16 MiB
  // limit, not buffered to the end.
  std::vector<std::string> pieces(20, std::string(1 << 20, 'x'));
  pieces.front() = "{\"a\":1}\n" + pieces.front();
  std::atomic<int> pieces_read{0};
  RestClient& client =
      Client([&pieces, &pieces_read](const net::HttpRequest& request, int) {
        net::HttpRequest counting = request;
        counting.on_body = [&](std::string_view chunk) {
          ++pieces_read;
          return request.on_body(chunk);
        };
        return FakeHttpTransport::Streamed(counting, pieces);
      });
  Status status;
  auto objects = Collect(client, status);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("a streamed object over"));
  EXPECT_EQ(objects.size(), 1u);  // the line before it was delivered
  EXPECT_EQ(pieces_read, 17);
  EXPECT_EQ(transport_->count(), 1);  // not retried
}

TEST_F(RestClientTest, StreamReturnsTheApiErrorOfA410AtOpen) {
  RestClient& client = Client([](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(
        410, R"({"kind":"Status","apiVersion":"v1","status":"Failure",)"
             R"j("message":"too old resource version: 5 (900)",)j"
             R"("reason":"Expired","code":410})");
  });
  ApiError error;
  int seen = 0;
  Status status = client.Stream(
      {"GET", "/apis/batch/v1/jobs?watch=1&resourceVersion=5", ""},
      [&](nlohmann::json) {
        ++seen;
        return true;
      },
      {}, &error);
  EXPECT_EQ(status.code(), StatusCode::kNotFound);
  EXPECT_EQ(status.message(),
            "GET /apis/batch/v1/jobs?watch=1&resourceVersion=5: 410 Expired: "
            "too old resource version: 5 (900)");
  EXPECT_EQ(error.http_status, 410);
  EXPECT_EQ(error.reason, "Expired");
  EXPECT_EQ(seen, 0);
  EXPECT_EQ(transport_->count(), 1);
}

// A stream that is out of step with the server (a proxy's page, garbage)
// is ended at the first line that is not JSON, quoting an excerpt: not
// 100,000 lines skipped in silence.
TEST_F(RestClientTest, StreamEndsAtALineThatIsNotJson) {
  std::atomic<int> pieces_read{0};
  RestClient& client =
      Client([&pieces_read](const net::HttpRequest& request, int) {
        net::HttpRequest counting = request;
        counting.on_body = [&](std::string_view chunk) {
          ++pieces_read;
          return request.on_body(chunk);
        };
        std::vector<std::string> pieces = {"{\"n\":1}\n",
                                           "<html>\r\x01 proxy error</html>\n"};
        for (int i = 0; i < 1000; ++i) pieces.push_back("garbage\n");
        return FakeHttpTransport::Streamed(counting, pieces);
      });
  Status status;
  auto objects = Collect(client, status);
  EXPECT_EQ(objects.size(), 1u);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(status.message(),
              HasSubstr("the stream sent a line that is not JSON: <html>   "
                        "proxy error</html>"));
  EXPECT_EQ(pieces_read, 2);
  EXPECT_EQ(transport_->count(), 1);
}

TEST_F(RestClientTest, StreamOpeningIsRetriedButABrokenStreamIsNot) {
  RestClient& client = Client([](const net::HttpRequest& request, int n) {
    if (n == 0) return FakeHttpTransport::Reply(503, kStatus503);
    net::HttpOutcome out = FakeHttpTransport::Streamed(request, {"{}\n"});
    out.status = Unavailable("GET x: connection reset mid-body");
    return out;
  });
  Status status;
  auto objects = Collect(client, status);
  EXPECT_EQ(objects.size(), 1u);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_THAT(status.message(), HasSubstr("mid-body"));
  EXPECT_EQ(transport_->count(), 2);
}

}  // namespace
}  // namespace cruncher::kube

namespace cruncher::kube {
namespace {

// The 422's causes name the fields at fault (the template check reads them);
// odd causes are skipped, and a flood of them is capped.
TEST_F(RestClientTest, A422CarriesTheFieldsOfItsCauses) {
  nlohmann::json causes =
      nlohmann::json::array({{{"reason", "FieldValueRequired"},
                              {"field", "spec.template.spec.restartPolicy"}},
                             {{"field", 5}},
                             "not an object",
                             nullptr,
                             {{"reason", "no field"}}});
  for (int i = 0; i < 100; ++i)
    causes.push_back({{"field", "f" + std::to_string(i)}});
  const nlohmann::json status = {
      {"kind", "Status"},    {"status", "Failure"},
      {"reason", "Invalid"}, {"message", "Job.batch \"x\" is invalid"},
      {"code", 422},         {"details", {{"causes", causes}}}};
  RestClient& client = Client([&](const net::HttpRequest&, int) {
    return FakeHttpTransport::Reply(422, status.dump());
  });
  ApiError error;
  auto body = client.Do({"POST", kJobs, "{}"}, {}, &error);
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(error.http_status, 422);
  ASSERT_EQ(error.fields.size(), kMaxCauseFields);
  EXPECT_EQ(error.fields[0], "spec.template.spec.restartPolicy");
  EXPECT_EQ(error.fields[1], "f0");
  // details of the wrong type: no fields, no crash.
  for (const char* details : {R"("details":null)", R"("details":[1])",
                              R"("details":{"causes":{"a":1}})"}) {
    RestClient& other = Client([&](const net::HttpRequest&, int) {
      return FakeHttpTransport::Reply(
          422, std::string(R"({"kind":"Status","reason":"Invalid",)") +
                   details + "}");
    });
    ApiError e;
    EXPECT_FALSE(other.Do({"POST", kJobs, "{}"}, {}, &e).ok());
    EXPECT_TRUE(e.fields.empty()) << details;
  }
}

}  // namespace
}  // namespace cruncher::kube
