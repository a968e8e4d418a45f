// KubeJobBackend and JobInformer over a scripted transport: what a create
// does when its outcome is unknown, paged lists, the cache kept by a watch,
// and a relist after 410 Gone.
#include "kube/kube_job_backend.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "fakes/fake_clock.h"
#include "fakes/fake_http_transport.h"
#include "fakes/test_util.h"
#include "kube/credentials.h"
#include "kube/job_informer.h"

namespace cruncher::kube {
namespace {

using cruncher::testing::FakeHttpTransport;
using nlohmann::json;

json JobJson(const std::string& name, bool complete = false,
             const std::string& rv = "10") {
  json job = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata",
               {{"name", name},
                {"namespace", "ns"},
                {"resourceVersion", rv},
                {"creationTimestamp", "2026-12-01T00:00:00Z"},
                {"labels", {{"app.kubernetes.io/managed-by", "cruncher"}}},
                {"annotations",
                 {{"task", "{\"n\":1}"}, {"cruncher.dev/message-id", "m-1"}}},
                {"managedFields", json::array({{{"manager", "x"}}})}}},
              {"spec", {{"template", json::object()}}},
              {"status", json::object()}};
  if (complete) {
    job["status"] = {
        {"succeeded", 1},
        {"conditions",
         json::array({{{"type", "Complete"}, {"status", "True"}}})}};
  }
  return job;
}

std::string Status404() {
  return json({{"kind", "Status"},
               {"reason", "NotFound"},
               {"message", "jobs.batch \"j\" not found"},
               {"code", 404}})
      .dump();
}

class CollectingSink final : public LogSink {
 public:
  void BeginAttempt(const std::string& attempt) override {
    text += "==> " + attempt + "\n";
  }
  void Write(std::string_view data) override { text.append(data); }
  std::string text;
};

class KubeJobBackendTest : public ::testing::Test {
 protected:
  std::unique_ptr<KubeJobBackend> Backend(FakeHttpTransport::Handler script,
                                          bool cache = false) {
    transport_ = std::make_shared<FakeHttpTransport>(std::move(script));
    ClusterConfig config;
    config.server = "https://api.test";
    config.namespace_name = "ns";
    config.source = "test";
    RestOptions options;
    options.max_retries = 2;
    auto rest = RestClient::Create(
        config, std::make_shared<StaticCredentialProvider>("token"), transport_,
        clock_, options);
    EXPECT_TRUE(rest.ok());
    return std::make_unique<KubeJobBackend>(std::move(*rest),
                                            KubeJobBackendOptions{"", cache});
  }

  testing::FakeClock clock_;
  std::shared_ptr<FakeHttpTransport> transport_;
};

TEST_F(KubeJobBackendTest, ACreateWhoseAnswerWasLostIsLookedUpNotRepeated) {
  auto backend = Backend([](const net::HttpRequest& r, int n) {
    if (n == 0) {
      EXPECT_EQ(r.method, "POST");
      return FakeHttpTransport::ConnectionFailure(r);
    }
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.url, "https://api.test/apis/batch/v1/namespaces/ns/jobs/j");
    return FakeHttpTransport::Reply(200, JobJson("j").dump());
  });
  Status created = backend->Create(JobJson("j"));
  EXPECT_EQ(created.code(), StatusCode::kAlreadyExists) << created.ToString();
  EXPECT_EQ(transport_->requests().size(), 2u);
}

TEST_F(KubeJobBackendTest, ACreateThatDidNotLandIsRepeatedOnceAfterLooking) {
  auto backend = Backend([](const net::HttpRequest&, int n) {
    switch (n) {
      case 0:
        return FakeHttpTransport::Reply(503, "{}");  // a POST is not retried
      case 1:
        return FakeHttpTransport::Reply(404, Status404());
      default:
        return FakeHttpTransport::Reply(201, JobJson("j").dump());
    }
  });
  EXPECT_TRUE(backend->Create(JobJson("j")).ok());
  auto requests = transport_->requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[1].method, "GET");
  EXPECT_EQ(requests[2].method, "POST");
}

TEST_F(KubeJobBackendTest, AlreadyExistsAndRejectionsAreReportedAsSuch) {
  auto backend = Backend([](const net::HttpRequest& r, int) {
    const bool bad = r.body.find("Bad_Name") != std::string::npos;
    return bad ? FakeHttpTransport::Reply(422,
                                          json({{"kind", "Status"},
                                                {"reason", "Invalid"},
                                                {"message",
                                                 "Job.batch \"b\" is invalid: "
                                                 "spec.template...name"}})
                                              .dump())
               : FakeHttpTransport::Reply(
                     409, json({{"kind", "Status"},
                                {"reason", "AlreadyExists"},
                                {"message", "jobs.batch \"j\" already exists"}})
                              .dump());
  });
  EXPECT_EQ(backend->Create(JobJson("j")).code(), StatusCode::kAlreadyExists);
  json bad = JobJson("b");
  bad["spec"]["template"]["name"] = "Bad_Name";
  Status rejected = backend->Create(bad);
  EXPECT_EQ(rejected.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(rejected.message().find("422 Invalid"), std::string::npos)
      << rejected.message();
  EXPECT_EQ(transport_->requests().size(), 2u);  // neither is looked up
}

// A name is pasted into the URL path: "../../other/jobs/victim" would reach
// another namespace's Job. Refused before any request.
TEST_F(KubeJobBackendTest, AnInvalidJobNameIsRefusedBeforeAnyRequest) {
  auto backend = Backend([](const net::HttpRequest& r, int) {
    ADD_FAILURE() << "sent " << r.method << " " << r.url;
    return FakeHttpTransport::Reply(500, "");
  });
  for (const std::string name :
       {"../../other/jobs/victim", "", "BAD NAME", "a?watch=1"}) {
    Result<Job> got = backend->Get(name);
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(got.status().message().find("invalid Job name"),
              std::string::npos)
        << got.status().message();
    EXPECT_EQ(backend->Delete(name).code(), StatusCode::kInvalidArgument);
    CollectingSink sink;
    EXPECT_EQ(backend->StreamLogs(name, {}, sink, {}).code(),
              StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(transport_->count(), 0);
}

// A pod name from the server goes into the log path too.
TEST_F(KubeJobBackendTest, APodWithAnInvalidNameIsNotFetched) {
  auto backend = Backend([](const net::HttpRequest& r, int n) {
    if (n == 0) return FakeHttpTransport::Reply(200, JobJson("j").dump());
    EXPECT_EQ(n, 1) << r.url;
    return FakeHttpTransport::Reply(
        200,
        json({{"items",
               json::array({{{"metadata", {{"name", "../../secrets/x"}}}}})}})
            .dump());
  });
  CollectingSink sink;
  Status logs = backend->StreamLogs("j", {}, sink, {});
  EXPECT_EQ(logs.code(), StatusCode::kUnavailable) << logs.ToString();
  EXPECT_EQ(transport_->count(), 2);
}

TEST_F(KubeJobBackendTest, ListPagesAndOrdersOldestFirst) {
  auto backend = Backend([](const net::HttpRequest& r, int n) {
    EXPECT_NE(r.url.find("labelSelector=app.kubernetes.io%2Fmanaged-by%3D"
                         "cruncher"),
              std::string::npos)
        << r.url;
    EXPECT_NE(r.url.find("limit=500"), std::string::npos) << r.url;
    json page = {{"items", json::array()}, {"metadata", json::object()}};
    if (n == 0) {
      json newer = JobJson("b");
      newer["metadata"]["creationTimestamp"] = "2026-12-01T00:00:09Z";
      page["items"].push_back(newer);
      page["metadata"]["continue"] = "tok";
      page["metadata"]["resourceVersion"] = "77";
    } else {
      EXPECT_NE(r.url.find("continue=tok"), std::string::npos) << r.url;
      page["items"].push_back(JobJson("a"));
    }
    return FakeHttpTransport::Reply(200, page.dump());
  });
  auto jobs = backend->List();
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  ASSERT_EQ(jobs->size(), 2u);
  EXPECT_EQ((*jobs)[0].name(), "a");
  EXPECT_EQ((*jobs)[1].name(), "b");
  // Without managedFields, which no reader needs.
  EXPECT_FALSE((*jobs)[0].json()["metadata"].contains("managedFields"));
}

// The cache: listed, then kept current by a watch; a 410 inside the stream
// makes it list again.
TEST_F(KubeJobBackendTest, TheCacheFollowsTheWatchAndRelistsAfterGone) {
  std::atomic<int> lists{0};
  std::atomic<int> watches{0};
  clock_.set_auto_advance(true);
  auto backend = Backend(
      [&](const net::HttpRequest& r, int) {
        if (r.url.find("watch=1") == std::string::npos) {
          ++lists;
          json page = {{"items", json::array({JobJson("a")})},
                       {"metadata", {{"resourceVersion", "100"}}}};
          return FakeHttpTransport::Reply(200, page.dump());
        }
        const int w = ++watches;
        net::HttpOutcome out = FakeHttpTransport::Reply(200, "");
        if (w == 1) {
          EXPECT_NE(r.url.find("resourceVersion=100"), std::string::npos);
          EXPECT_NE(r.url.find("allowWatchBookmarks=true"), std::string::npos);
          // Split across chunks, as a stream arrives.
          std::string events =
              json({{"type", "ADDED"}, {"object", JobJson("b", false, "101")}})
                  .dump() +
              "\n" +
              json(
                  {{"type", "MODIFIED"}, {"object", JobJson("a", true, "102")}})
                  .dump() +
              "\n" +
              json({{"type", "ERROR"},
                    {"object",
                     {{"kind", "Status"},
                      {"code", 410},
                      {"reason", "Expired"},
                      {"message", "too old resource version"}}}})
                  .dump() +
              "\n";
          const std::size_t half = events.size() / 2;
          if (r.on_body(std::string_view(events).substr(0, half))) {
            r.on_body(std::string_view(events).substr(half));
          }
          return out;
        }
        // Later watches: held open until the test stops the backend.
        while (!r.stop.stop_requested()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        out.stopped = true;
        out.status = Unavailable("stopped");
        return out;
      },
      /*cache=*/true);
  ASSERT_TRUE(testing::WaitFor([&] { return watches.load() >= 2; }));
  EXPECT_EQ(lists.load(), 2);  // the first list, and the one after 410
  // The relist's snapshot (only "a", not complete) replaced what the watch
  // had made of the cache ("a" complete, "b" running).
  auto unfinished = backend->CountUnfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_EQ(*unfinished, 1);
  EXPECT_EQ(backend->informer()->size(), 1u);
  EXPECT_FALSE(backend->informer()->Get("b").has_value());
  ASSERT_TRUE(backend->informer()->Get("a").has_value());
  EXPECT_FALSE(backend->informer()->Get("a")->finished());
  auto a = backend->Get("a");
  ASSERT_TRUE(a.ok());
  // The cache keeps status and metadata, not the task or the spec.
  EXPECT_EQ(a->annotation("cruncher.dev/message-id"), "m-1");
  EXPECT_EQ(a->task(), "");
  EXPECT_FALSE(a->json().contains("spec"));
  EXPECT_EQ(backend->informer()->lists(), 2u);
}

TEST_F(KubeJobBackendTest, AJobCreatedHereIsInTheCacheAtOnce) {
  clock_.set_auto_advance(true);
  std::atomic<bool> listed{false};
  auto backend = Backend(
      [&](const net::HttpRequest& r, int) {
        if (r.method == "POST") {
          return FakeHttpTransport::Reply(201, JobJson("new").dump());
        }
        if (r.url.find("watch=1") == std::string::npos) {
          listed = true;
          return FakeHttpTransport::Reply(
              200, json({{"items", json::array()},
                         {"metadata", {{"resourceVersion", "5"}}}})
                       .dump());
        }
        while (!r.stop.stop_requested()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        net::HttpOutcome out;
        out.stopped = true;
        out.status = Unavailable("stopped");
        return out;
      },
      /*cache=*/true);
  ASSERT_TRUE(testing::WaitFor([&] { return listed.load(); }));
  ASSERT_TRUE(backend->informer()->WaitForSync({}));
  ASSERT_TRUE(backend->Create(JobJson("new")).ok());
  EXPECT_EQ(backend->informer()->size(), 1u);
  auto unfinished = backend->CountUnfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_EQ(*unfinished, 1);
}

TEST_F(KubeJobBackendTest, BeforeTheFirstListCountsAreUnavailableNotAWait) {
  clock_.set_auto_advance(true);
  auto backend = Backend(
      [&](const net::HttpRequest& r, int) {
        if (r.method == "GET" && r.url.find("watch=1") == std::string::npos) {
          return FakeHttpTransport::Reply(
              403, json({{"kind", "Status"},
                         {"reason", "Forbidden"},
                         {"message",
                          "jobs.batch is forbidden: cannot list "
                          "resource \"jobs\""}})
                       .dump());
        }
        return FakeHttpTransport::Hang(r);
      },
      /*cache=*/true);
  ASSERT_TRUE(transport_->WaitFor([](int count, int) { return count >= 2; }));
  auto unfinished = backend->CountUnfinished();  // returns, never blocks
  ASSERT_FALSE(unfinished.ok());
  EXPECT_EQ(unfinished.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(unfinished.status().message().find("cannot list"),
            std::string::npos)
      << unfinished.status().message();
}

TEST(JobInformerTest, ACreateAnsweredAfterTheWatchSawItDeletedLeavesNoGhost) {
  testing::FakeClock clock;
  auto transport =
      std::make_shared<FakeHttpTransport>([](const net::HttpRequest&, int) {
        return FakeHttpTransport::Reply(500, "{}");
      });
  ClusterConfig config;
  config.server = "https://api.test";
  auto rest = RestClient::Create(
      config, std::make_shared<StaticCredentialProvider>(""), transport, clock);
  ASSERT_TRUE(rest.ok());
  JobClient client(**rest, "ns");
  JobInformer informer(client, "x=y", clock);
  json created = JobJson("j");
  created["metadata"]["uid"] = "u-1";
  auto job = Job::FromJson(created);
  ASSERT_TRUE(job.ok());
  // The Job is cached and then deleted (Remove leaves the tombstone a
  // watch's DELETED leaves) before the create's answer is written through.
  informer.Put(*job);
  informer.Remove("j");
  informer.Put(*job);  // the late write-through
  EXPECT_EQ(informer.size(), 0u);
  EXPECT_EQ(informer.CountUnfinished(), 0);
  // A new Job of the same name (another uid) is cached as usual.
  created["metadata"]["uid"] = "u-2";
  auto again = Job::FromJson(created);
  ASSERT_TRUE(again.ok());
  informer.Put(*again);
  EXPECT_EQ(informer.size(), 1u);
}

// An informer over a scripted server, run on the test's thread with the
// fake clock (auto-advancing) until the server has been asked `requests`
// times: when each request came (fake ms since the start), what it was,
// and the log lines.
class InformerRunTest : public ::testing::Test {
 protected:
  struct Request {
    Millis at;
    bool watch;
  };
  void RunInformer(FakeHttpTransport::Handler handler, int requests) {
    SetLogSink([this](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      logs_.push_back(json::parse(line));
    });
    std::stop_source stop;
    const Millis start = clock_.NowMillis();
    auto transport = std::make_shared<FakeHttpTransport>(
        [&](const net::HttpRequest& r, int n) {
          requests_.push_back({clock_.NowMillis() - start,
                               r.url.find("watch=1") != std::string::npos});
          if (n + 1 >= requests) stop.request_stop();
          return handler(r, n);
        });
    ClusterConfig config;
    config.server = "https://api.test";
    auto rest = RestClient::Create(
        config, std::make_shared<StaticCredentialProvider>(""), transport,
        clock_);
    ASSERT_TRUE(rest.ok());
    JobClient client(**rest, "ns");
    JobInformer informer(client, "x=y", clock_);
    informer.Run(stop.get_token());
    SetLogSink(nullptr);
  }
  // The gaps between successive requests of one kind.
  std::vector<Millis> Gaps(bool watch) const {
    std::vector<Millis> gaps;
    std::optional<Millis> last;
    for (const Request& r : requests_) {
      if (r.watch != watch) continue;
      if (last) gaps.push_back(r.at - *last);
      last = r.at;
    }
    return gaps;
  }
  std::vector<json> Logs(const std::string& event) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<json> out;
    for (const auto& line : logs_) {
      if (line.value("event", "") == event) out.push_back(line);
    }
    return out;
  }
  static net::HttpOutcome EmptyList() {
    return FakeHttpTransport::Reply(
        200, json({{"items", json::array()},
                   {"metadata", {{"resourceVersion", "1"}}}})
                 .dump());
  }

  testing::FakeClock clock_;
  std::vector<Request> requests_;
  std::mutex mu_;
  std::vector<json> logs_;  // guarded by mu_
};

// A server answering every watch with ERROR 410 made 22 list+watch pairs a
// second; each relist now waits longer, up to 30 s.
TEST_F(InformerRunTest, EveryWatchAnswered410IsBackedOffUpTo30s) {
  RunInformer(
      [](const net::HttpRequest& r, int) {
        if (r.url.find("watch=1") == std::string::npos) return EmptyList();
        return FakeHttpTransport::Streamed(r,
                                           {json({{"type", "ERROR"},
                                                  {"object",
                                                   {{"kind", "Status"},
                                                    {"code", 410},
                                                    {"reason", "Expired"},
                                                    {"message", "too old"}}}})
                                                .dump() +
                                            "\n"});
      },
      20);
  EXPECT_EQ(Gaps(/*watch=*/false),
            (std::vector<Millis>{500, 1000, 2000, 4000, 8000, 16000, 30000,
                                 30000, 30000}));
  auto warnings = Logs("job_watch_failed");
  ASSERT_FALSE(warnings.empty());
  EXPECT_EQ(warnings[0].value("level", ""), "warn");
  EXPECT_EQ(warnings[0].value("retry_in_ms", 0), 500);
}

// A proxy that closes every watch at once, empty.
TEST_F(InformerRunTest, WatchesThatEndAtOnceAreBackedOffAndResetByAHealthyOne) {
  RunInformer(
      [this](const net::HttpRequest& r, int n) {
        if (r.url.find("watch=1") == std::string::npos) return EmptyList();
        // The fifth watch lasts a minute: the server is well again.
        if (n == 5) clock_.Advance(60'000);
        return FakeHttpTransport::Streamed(r, {});
      },
      9);
  EXPECT_EQ(Gaps(/*watch=*/true),
            (std::vector<Millis>{500, 1000, 2000, 4000, 60'000, 500, 1000}));
  EXPECT_EQ(Gaps(/*watch=*/false).size(), 0u);  // re-watched, never relisted
  EXPECT_FALSE(Logs("job_watch_ended_at_once").empty());
}

// client-go ends a watch on a decode error; 100,000 garbage lines were
// skipped in silence. Now the first one ends the watch with one warning
// quoting it, and the informer lists again.
TEST_F(InformerRunTest, AWatchLineOrEventThatCannotBeDecodedEndsTheWatch) {
  const std::vector<std::string> bad = {
      "not json at all",
      "[1,2,3]",
      R"({"type":5,"object":{}})",
      R"({"type":"ADDED","object":5})",
      R"({"type":"ADDED","object":{"metadata":{}}})",
      R"({"type":"SOMETHING","object":{}})",
  };
  RunInformer(
      [&bad](const net::HttpRequest& r, int n) {
        if (r.url.find("watch=1") == std::string::npos) return EmptyList();
        std::vector<std::string> lines(1000, bad[(n / 2) % bad.size()] + "\n");
        return FakeHttpTransport::Streamed(r, lines);
      },
      2 * static_cast<int>(bad.size()));
  // list, watch, list, watch, ...: every watch ended and was followed by a
  // list.
  ASSERT_EQ(requests_.size(), 2 * bad.size());
  for (std::size_t i = 0; i < requests_.size(); ++i) {
    EXPECT_EQ(requests_[i].watch, i % 2 == 1) << i;
  }
  auto warnings = Logs("job_watch_failed");
  // One per watch (the last is cut short by the stop), not one per line.
  ASSERT_GE(warnings.size(), bad.size() - 1);
  ASSERT_LE(warnings.size(), bad.size());
  EXPECT_THAT(warnings[0].value("error", ""),
              ::testing::HasSubstr("not JSON: not json at all"));
  EXPECT_THAT(warnings[1].value("error", ""),
              ::testing::HasSubstr("an event that is not a Job's ADDED"));
}

TEST(JobClientTest, AContinueTokenAnsweredWithItselfIsAnErrorNotALoop) {
  testing::FakeClock clock;
  auto transport =
      std::make_shared<FakeHttpTransport>([](const net::HttpRequest&, int) {
        return FakeHttpTransport::Reply(
            200, json({{"items", json::array({JobJson("a")})},
                       {"metadata", {{"continue", "same"}}}})
                     .dump());
      });
  ClusterConfig config;
  config.server = "https://api.test";
  auto rest = RestClient::Create(
      config, std::make_shared<StaticCredentialProvider>(""), transport, clock);
  ASSERT_TRUE(rest.ok());
  JobClient client(**rest, "ns");
  auto list = client.List("x=y");
  ASSERT_FALSE(list.ok());
  EXPECT_EQ(list.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(list.status().message().find("same token"), std::string::npos)
      << list.status().message();
  EXPECT_EQ(transport->count(), 2);
}

TEST(JobClientTest, ItemsThatAreNotJobsAreCountedAndLogged) {
  std::vector<json> logs;
  SetLogSink(
      [&](const std::string& line) { logs.push_back(json::parse(line)); });
  testing::FakeClock clock;
  auto transport =
      std::make_shared<FakeHttpTransport>([](const net::HttpRequest&, int n) {
        if (n == 1) return FakeHttpTransport::Reply(200, "{}");
        return FakeHttpTransport::Reply(
            200, json({{"items",
                        json::array({5, json::object(), "x", JobJson("a")})},
                       {"metadata", json::object()}})
                     .dump());
      });
  ClusterConfig config;
  config.server = "https://api.test";
  auto rest = RestClient::Create(
      config, std::make_shared<StaticCredentialProvider>(""), transport, clock);
  ASSERT_TRUE(rest.ok());
  JobClient client(**rest, "ns");
  auto list = client.List("x=y");
  SetLogSink(nullptr);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  ASSERT_EQ(list->jobs.size(), 1u);
  EXPECT_EQ(list->jobs[0].name(), "a");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(logs[0].value("event", ""), "job_list_items_skipped");
  EXPECT_EQ(logs[0].value("level", ""), "warn");
  EXPECT_EQ(logs[0].value("skipped", 0), 3);
  // A page with no items array is not a JobList at all.
  auto empty = client.List("x=y");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("no items array"), std::string::npos)
      << empty.status().message();
}

}  // namespace
}  // namespace cruncher::kube
