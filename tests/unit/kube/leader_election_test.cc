// LeaderElector against an in-memory Lease API (resourceVersions, 409 on a
// stale write, 404 before creation) over the fake transport, with a manual
// FakeClock: the test moves time and waits for the elector's threads to
// settle before looking.
#include "kube/leader_election.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include "fakes/fake_clock.h"
#include "fakes/fake_http_transport.h"

namespace cruncher::kube {
namespace {

using testing::FakeClock;
using testing::FakeHttpTransport;
using ::testing::HasSubstr;

constexpr const char* kLeases =
    "/apis/coordination.k8s.io/v1/namespaces/ns/leases";
constexpr const char* kServer = "https://kube.test";

nlohmann::json StatusBody(int code, const std::string& reason,
                          const std::string& message) {
  return {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"},
          {"reason", reason}, {"message", message}, {"code", code}};
}

// The Lease endpoints of an API server, for one Lease "lock" in "ns".
class FakeLeaseServer {
 public:
  // Returns an answer to give instead of serving the request, or nullopt.
  using Intercept =
      std::function<std::optional<net::HttpOutcome>(const net::HttpRequest&)>;

  net::HttpOutcome Serve(const net::HttpRequest& request) {
    Intercept intercept;
    {
      std::lock_guard<std::mutex> lock(mu_);
      intercept = intercept_;
    }
    if (intercept) {
      if (auto answer = intercept(request)) return *answer;
    }
    std::lock_guard<std::mutex> lock(mu_);
    const std::string path = request.url.substr(std::string(kServer).size());
    const std::string item = std::string(kLeases) + "/lock";
    if (request.method == "GET" && path == item) {
      if (!lease_) return Error(404, "NotFound", "leases \"lock\" not found");
      return FakeHttpTransport::Reply(200, lease_->dump());
    }
    if (request.method == "POST" && path == kLeases) {
      if (lease_) return Error(409, "AlreadyExists", "already exists");
      nlohmann::json lease = nlohmann::json::parse(request.body);
      Store(lease);
      return FakeHttpTransport::Reply(201, lease_->dump());
    }
    if (request.method == "PUT" && path == item) {
      if (!lease_) return Error(404, "NotFound", "leases \"lock\" not found");
      nlohmann::json lease = nlohmann::json::parse(request.body);
      if (lease["metadata"].value("resourceVersion", "") != Rv()) {
        return Error(409, "Conflict",
                     "Operation cannot be fulfilled on leases.coordination."
                     "k8s.io \"lock\": the object has been modified");
      }
      Store(lease);
      return FakeHttpTransport::Reply(200, lease_->dump());
    }
    return Error(400, "BadRequest",
                 "unexpected " + request.method + " " + path);
  }

  void set_intercept(Intercept intercept) {
    std::lock_guard<std::mutex> lock(mu_);
    intercept_ = std::move(intercept);
  }

  // Another client writes the spec (or, with `spec` null, only a label).
  void WriteAsOther(const nlohmann::json& spec) {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json lease =
        lease_.value_or(nlohmann::json{{"apiVersion", "coordination.k8s.io/v1"},
                                       {"kind", "Lease"},
                                       {"metadata", {{"name", "lock"}}}});
    if (spec.is_null()) {
      lease["metadata"]["labels"]["touched"] = std::to_string(rv_);
    } else {
      lease["spec"] = spec;
    }
    Store(lease);
  }

  LeaseRecord Record() {
    std::lock_guard<std::mutex> lock(mu_);
    return lease_ ? ParseLeaseRecord(*lease_) : LeaseRecord{};
  }
  nlohmann::json Lease() {
    std::lock_guard<std::mutex> lock(mu_);
    return lease_.value_or(nullptr);
  }

 private:
  static net::HttpOutcome Error(int code, const std::string& reason,
                                const std::string& message) {
    return FakeHttpTransport::Reply(code,
                                    StatusBody(code, reason, message).dump());
  }
  std::string Rv() const { return std::to_string(rv_); }
  void Store(nlohmann::json lease) {
    ++rv_;
    lease["metadata"]["resourceVersion"] = Rv();
    lease["metadata"]["namespace"] = "ns";
    lease_ = std::move(lease);
  }

  std::mutex mu_;
  std::optional<nlohmann::json> lease_;
  long rv_ = 100;
  Intercept intercept_;
};

// What the callbacks saw, at which (fake) times.
struct Observed {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<Millis> started_at;
  std::optional<Millis> leading_stopped_at;  // the work saw its token stop
  bool work_returned = false;
  std::optional<Millis> stopped_at;  // on_stopped_leading
  std::optional<Status> result;      // Run's

  bool WaitFor(const std::function<bool()>& pred) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), pred);
  }
};

// One candidate: a REST client over its own fake transport (so a test can
// cut one candidate off) on the shared server, its elector, and the thread
// running it.
class Candidate {
 public:
  Candidate(FakeLeaseServer& server, FakeClock& clock, std::string identity,
            bool work_returns_at_once = false)
      : clock_(clock), work_returns_at_once_(work_returns_at_once) {
    transport_ = std::make_shared<FakeHttpTransport>(
        [this, &server](const net::HttpRequest& request, int) {
          if (cut_off_) return FakeHttpTransport::Hang(request);
          return server.Serve(request);
        });
    ClusterConfig config;
    config.server = kServer;
    config.namespace_name = "ns";
    RestOptions options;
    options.max_retries = 0;  // the elector's own retry period decides
    client_ = RestClient::Create(config,
                                 std::make_shared<StaticCredentialProvider>(""),
                                 transport_, clock, options)
                  .value();
    LeaseConfig lease{"ns", "lock", std::move(identity)};
    elector_ = std::make_unique<LeaderElector>(*client_, lease, clock);
  }
  ~Candidate() {
    stop_.request_stop();
    if (thread_.joinable()) thread_.join();
  }

  void Start() {
    thread_ = std::thread([this] {
      Status status = elector_->Run(
          stop_.get_token(),
          [this](std::stop_token leading) {
            std::unique_lock<std::mutex> lock(seen.mu);
            seen.started_at = clock_.NowMillis();
            seen.cv.notify_all();
            if (!work_returns_at_once_) {
              std::condition_variable_any cv;
              cv.wait(lock, leading, [] { return false; });
              seen.leading_stopped_at = clock_.NowMillis();
            }
            seen.work_returned = true;
            seen.cv.notify_all();
          },
          [this] {
            std::lock_guard<std::mutex> lock(seen.mu);
            seen.stopped_at = clock_.NowMillis();
            seen.cv.notify_all();
          });
      std::lock_guard<std::mutex> lock(seen.mu);
      seen.result = status;
      seen.cv.notify_all();
    });
  }
  void Stop() { stop_.request_stop(); }
  void Join() { thread_.join(); }
  // From now on requests get no answer (a network partition); those in
  // flight end when their stop token is stopped.
  void CutOff() { cut_off_ = true; }

  LeaderElector& elector() { return *elector_; }
  FakeHttpTransport& transport() { return *transport_; }
  Observed seen;

 private:
  FakeClock& clock_;
  const bool work_returns_at_once_;
  std::atomic<bool> cut_off_{false};
  std::shared_ptr<FakeHttpTransport> transport_;
  std::unique_ptr<RestClient> client_;
  std::unique_ptr<LeaderElector> elector_;
  std::stop_source stop_;
  std::thread thread_;
};

class LeaderElectionTest : public ::testing::Test {
 protected:
  LeaderElectionTest() { clock_.set_auto_advance(false); }

  // Waits (real time) until `n` threads sleep on the clock.
  void WaitSleepers(int n) {
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (clock_.sleepers() != n &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(clock_.sleepers(), n);
  }
  // Moves the clock to t0 + `at`, then waits until `requests` requests
  // were made through `c` and `sleepers` threads sleep again.
  void AdvanceTo(Millis at, Candidate& c, int requests, int sleepers) {
    clock_.Set(t0_ + at);
    ASSERT_TRUE(c.transport().WaitFor([&](int count, int) {
      return count >= requests;
    })) << "at "
        << at << ": " << c.transport().count() << " requests";
    WaitSleepers(sleepers);
  }
  // Lets threads that might (wrongly) act run before checking they did not.
  static void Linger() {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  static std::vector<std::string> Calls(Candidate& c) {
    std::vector<std::string> calls;
    for (const auto& r : c.transport().requests()) calls.push_back(r.method);
    return calls;
  }

  nlohmann::json Spec(const std::string& holder, Millis renew,
                      long transitions = 3, long duration = 15) {
    return {{"holderIdentity", holder},
            {"leaseDurationSeconds", duration},
            {"acquireTime", FormatMicroTime(renew)},
            {"renewTime", FormatMicroTime(renew)},
            {"leaseTransitions", transitions}};
  }

  FakeClock clock_;
  const Millis t0_ = clock_.NowMillis();
  FakeLeaseServer server_;
};

TEST_F(LeaderElectionTest, CreatesTheLeaseWhenAbsentAndRenewsEveryPeriod) {
  Candidate a(server_, clock_, "a");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);  // the renew loop and the deadline's watch
  EXPECT_EQ(*a.seen.started_at, t0_);
  EXPECT_TRUE(a.elector().IsLeader());
  EXPECT_THAT(Calls(a), ::testing::ElementsAre("GET", "POST"));
  LeaseRecord record = server_.Record();
  EXPECT_EQ(record.holder, "a");
  EXPECT_EQ(record.duration_seconds, 15);
  EXPECT_EQ(record.transitions, 0);
  EXPECT_EQ(record.acquire_time, FormatMicroTime(t0_));
  EXPECT_EQ(record.renew_time, record.acquire_time);
  EXPECT_EQ(server_.Lease()["apiVersion"], "coordination.k8s.io/v1");

  // One PUT per retry period, over the deadline's length several times.
  for (int k = 1; k <= 12; ++k) {
    AdvanceTo(k * 2000, a, 2 + k, 2);
    record = server_.Record();
    EXPECT_EQ(record.renew_time, FormatMicroTime(t0_ + k * 2000));
    EXPECT_EQ(record.acquire_time, FormatMicroTime(t0_));
    EXPECT_EQ(record.transitions, 0);
  }
  EXPECT_EQ(a.transport().count(), 14);
  EXPECT_EQ(a.transport().requests().back().method, "PUT");
  EXPECT_TRUE(a.elector().IsLeader());
  EXPECT_FALSE(a.seen.leading_stopped_at.has_value());
}

TEST_F(LeaderElectionTest, ExpiryIsJudgedByObservationNotByTheRecordsTimes) {
  // Held by "b", renewed an hour ago by our clock: stale by its times, but
  // b's clock may be an hour behind. We must first see it unchanged for
  // 15 s.
  server_.WriteAsOther(Spec("b", t0_ - 3'600'000));
  Candidate a(server_, clock_, "a");
  a.Start();
  WaitSleepers(1);
  for (int k = 1; k <= 7; ++k) AdvanceTo(k * 2000, a, 1 + k, 1);  // to 14 s
  EXPECT_FALSE(a.seen.started_at.has_value());
  EXPECT_THAT(Calls(a), ::testing::Each("GET"));
  // At 16 s, more than 15 s after we saw it: expired.
  AdvanceTo(16'000, a, 10, 2);
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  EXPECT_EQ(*a.seen.started_at, t0_ + 16'000);
  LeaseRecord record = server_.Record();
  EXPECT_EQ(record.holder, "a");
  EXPECT_EQ(record.transitions, 4);  // b's 3, plus ours
  EXPECT_EQ(record.acquire_time, FormatMicroTime(t0_ + 16'000));
}

TEST_F(LeaderElectionTest, ARecordFromTheFutureExpiresByObservationToo) {
  // b's clock runs an hour ahead: its renewTime is in our future.
  server_.WriteAsOther(Spec("b", t0_ + 3'600'000));
  Candidate a(server_, clock_, "a");
  a.Start();
  WaitSleepers(1);
  for (int k = 1; k <= 7; ++k) AdvanceTo(k * 2000, a, 1 + k, 1);
  EXPECT_FALSE(a.seen.started_at.has_value());
  AdvanceTo(16'000, a, 10, 2);
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  EXPECT_EQ(*a.seen.started_at, t0_ + 16'000);
}

TEST_F(LeaderElectionTest, AChangeOfTheRecordRestartsTheExpiry) {
  server_.WriteAsOther(Spec("b", t0_));
  Candidate a(server_, clock_, "a");
  a.Start();
  WaitSleepers(1);
  for (int k = 1; k <= 4; ++k) AdvanceTo(k * 2000, a, 1 + k, 1);  // to 8 s
  clock_.Set(t0_ + 9000);
  server_.WriteAsOther(Spec("b", t0_ + 9000));  // b renews
  // Seen changed at 10 s: valid until 25 s, taken at 26 s.
  for (int k = 5; k <= 12; ++k) AdvanceTo(k * 2000, a, 1 + k, 1);  // to 24 s
  EXPECT_FALSE(a.seen.started_at.has_value());
  AdvanceTo(26'000, a, 15, 2);
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  EXPECT_EQ(*a.seen.started_at, t0_ + 26'000);
}

TEST_F(LeaderElectionTest, AReleasedLeaseIsTakenAtOnce) {
  server_.WriteAsOther(Spec("", t0_, 5, 1));
  Candidate a(server_, clock_, "a");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  EXPECT_EQ(*a.seen.started_at, t0_);
  EXPECT_EQ(server_.Record().transitions, 6);
  EXPECT_EQ(server_.Record().duration_seconds, 15);
}

TEST_F(LeaderElectionTest, AConflictOnRenewalReReadsAndWritesAgain) {
  Candidate a(server_, clock_, "a");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);
  // Someone adds a label: the resourceVersion moves, the record does not.
  server_.WriteAsOther(nullptr);
  AdvanceTo(2000, a, 5, 2);
  EXPECT_THAT(Calls(a),
              ::testing::ElementsAre("GET", "POST", "PUT", "GET", "PUT"));
  EXPECT_TRUE(a.elector().IsLeader());
  EXPECT_EQ(server_.Record().renew_time, FormatMicroTime(t0_ + 2000));
  // The label survived our write of the whole object.
  EXPECT_TRUE(server_.Lease()["metadata"]["labels"].contains("touched"));
  AdvanceTo(4000, a, 6, 2);  // and the fast path works again
  EXPECT_EQ(server_.Record().renew_time, FormatMicroTime(t0_ + 4000));
}

TEST_F(LeaderElectionTest, AConflictWhileAcquiringLeavesTheLeaseToTheWinner) {
  server_.WriteAsOther(Spec("b", t0_));
  Candidate a(server_, clock_, "a");
  a.Start();
  WaitSleepers(1);
  for (int k = 1; k <= 7; ++k) AdvanceTo(k * 2000, a, 1 + k, 1);
  // Both a and c judge b's lease expired; c writes first.
  server_.set_intercept(
      [&](const net::HttpRequest& request) -> std::optional<net::HttpOutcome> {
        if (request.method == "PUT") {
          server_.set_intercept(nullptr);
          server_.WriteAsOther(Spec("c", t0_ + 16'000, 4));
        }
        return std::nullopt;
      });
  AdvanceTo(16'000, a, 10, 1);
  EXPECT_EQ(server_.Record().holder, "c");
  // Next time a reads c's record, new to it: valid for 15 s.
  AdvanceTo(18'000, a, 11, 1);
  Linger();
  EXPECT_FALSE(a.seen.started_at.has_value());
  EXPECT_FALSE(a.elector().IsLeader());
  EXPECT_EQ(server_.Record().holder, "c");
  EXPECT_EQ(server_.Record().transitions, 4);
}

TEST_F(LeaderElectionTest, MissingTheRenewDeadlineStopsTheLeadingToken) {
  Candidate a(server_, clock_, "a");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);
  a.CutOff();
  // The renewal at 2 s hangs; only the deadline's watch sleeps.
  clock_.Set(t0_ + 2000);
  ASSERT_TRUE(a.transport().WaitFor(
      [](int count, int in_flight) { return count == 3 && in_flight == 1; }));
  WaitSleepers(1);
  clock_.Set(t0_ + 9999);
  Linger();
  EXPECT_TRUE(a.elector().IsLeader());
  EXPECT_FALSE(a.seen.leading_stopped_at.has_value());
  // At the deadline, 10 s after the last renewal: lost, at that moment.
  clock_.Set(t0_ + 10'000);
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.result.has_value(); }));
  EXPECT_EQ(*a.seen.leading_stopped_at, t0_ + 10'000);
  EXPECT_EQ(*a.seen.stopped_at, t0_ + 10'000);
  EXPECT_FALSE(a.elector().IsLeader());
  EXPECT_EQ(a.seen.result->code(), StatusCode::kUnavailable);
  EXPECT_THAT(a.seen.result->message(), HasSubstr("renew deadline"));
  // The hung request was abandoned; no release was tried.
  EXPECT_EQ(a.transport().in_flight(), 0);
  EXPECT_EQ(a.transport().count(), 3);
}

TEST_F(LeaderElectionTest, TheRenewDeadlineRunsFromTheLastSuccess) {
  Candidate a(server_, clock_, "a");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);
  std::atomic<bool> failing{true};
  server_.set_intercept(
      [&](const net::HttpRequest&) -> std::optional<net::HttpOutcome> {
        if (!failing) return std::nullopt;
        return FakeHttpTransport::Reply(
            500, StatusBody(500, "InternalError", "etcd is sad").dump());
      });
  // Fails at 2, 4, 6 s (a PUT and a GET each), succeeds at 8 s.
  for (int k = 1; k <= 3; ++k) AdvanceTo(k * 2000, a, 2 + 2 * k, 2);
  failing = false;
  AdvanceTo(8000, a, 9, 2);  // the fast path's PUT alone
  EXPECT_EQ(server_.Record().renew_time, FormatMicroTime(t0_ + 8000));
  // Fails from 10 s on: still leading at 16 s, lost at 18 s.
  failing = true;
  for (int k = 5; k <= 8; ++k) AdvanceTo(k * 2000, a, 9 + 2 * (k - 4), 2);
  EXPECT_TRUE(a.elector().IsLeader());
  clock_.Set(t0_ + 18'000);
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.result.has_value(); }));
  EXPECT_EQ(*a.seen.leading_stopped_at, t0_ + 18'000);
  EXPECT_THAT(a.seen.result->message(), HasSubstr("etcd is sad"));
  EXPECT_EQ(a.transport().count(), 17);  // no attempt at the deadline
}

TEST_F(LeaderElectionTest, AnotherHolderSeenWhileLeadingEndsLeadershipAtOnce) {
  Candidate a(server_, clock_, "a");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);
  server_.WriteAsOther(Spec("usurper", t0_ + 1000, 1));
  clock_.Set(t0_ + 2000);
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.result.has_value(); }));
  EXPECT_EQ(*a.seen.leading_stopped_at, t0_ + 2000);
  EXPECT_THAT(a.seen.result->message(), HasSubstr("held by usurper"));
  EXPECT_EQ(server_.Record().holder, "usurper");  // not released over it
  EXPECT_THAT(Calls(a), ::testing::ElementsAre("GET", "POST", "PUT", "GET"));
}

TEST_F(LeaderElectionTest, AStopEndsTheWorkThenReleasesTheLease) {
  Candidate a(server_, clock_, "a");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);
  AdvanceTo(2000, a, 3, 2);
  // The release must come after the work returned: never two leaders'
  // work at once.
  std::atomic<bool> released_after_work{false};
  server_.set_intercept(
      [&](const net::HttpRequest& request) -> std::optional<net::HttpOutcome> {
        if (request.method == "PUT") {
          std::lock_guard<std::mutex> lock(a.seen.mu);
          released_after_work = a.seen.work_returned;
        }
        return std::nullopt;
      });
  a.Stop();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.result.has_value(); }));
  EXPECT_TRUE(a.seen.result->ok()) << a.seen.result->ToString();
  EXPECT_TRUE(released_after_work);
  EXPECT_EQ(*a.seen.leading_stopped_at, t0_ + 2000);
  EXPECT_TRUE(a.seen.stopped_at.has_value());
  EXPECT_FALSE(a.elector().IsLeader());
  LeaseRecord record = server_.Record();
  EXPECT_EQ(record.holder, "");
  EXPECT_EQ(record.duration_seconds, 1);
  EXPECT_EQ(record.transitions, 0);
  EXPECT_EQ(a.transport().count(), 4);
}

TEST_F(LeaderElectionTest, AReleaseThatHangsIsGivenUpAtTheRenewDeadline) {
  Candidate a(server_, clock_, "a");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);
  server_.set_intercept(
      [](const net::HttpRequest& request) -> std::optional<net::HttpOutcome> {
        return FakeHttpTransport::Hang(request);
      });
  a.Stop();
  // The release's PUT hangs; only the bound on it sleeps.
  ASSERT_TRUE(a.transport().WaitFor(
      [](int count, int in_flight) { return count == 3 && in_flight == 1; }));
  WaitSleepers(1);
  clock_.Set(t0_ + 9999);
  Linger();
  EXPECT_FALSE(a.seen.result.has_value());
  clock_.Set(t0_ + 10'000);
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.result.has_value(); }));
  EXPECT_TRUE(a.seen.result->ok());  // a shutdown, not a failure
  EXPECT_TRUE(a.seen.stopped_at.has_value());
  EXPECT_EQ(server_.Record().holder, "a");  // left to expire
}

TEST_F(LeaderElectionTest, WorkThatReturnsOnItsOwnReleasesTheLease) {
  Candidate a(server_, clock_, "a", /*work_returns_at_once=*/true);
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.result.has_value(); }));
  EXPECT_TRUE(a.seen.result->ok());
  EXPECT_TRUE(a.seen.stopped_at.has_value());
  EXPECT_EQ(server_.Record().holder, "");
}

TEST_F(LeaderElectionTest, AStopWhileWaitingToAcquireCallsNothing) {
  server_.WriteAsOther(Spec("b", t0_));
  Candidate a(server_, clock_, "a");
  a.Start();
  WaitSleepers(1);
  a.Stop();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.result.has_value(); }));
  EXPECT_TRUE(a.seen.result->ok());
  EXPECT_FALSE(a.seen.started_at.has_value());
  EXPECT_FALSE(a.seen.stopped_at.has_value());
  EXPECT_THAT(Calls(a), ::testing::ElementsAre("GET"));
}

TEST_F(LeaderElectionTest, OneOfTwoLeadsAndTheOtherFollowsARelease) {
  Candidate a(server_, clock_, "a");
  Candidate b(server_, clock_, "b");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);
  b.Start();
  WaitSleepers(3);
  clock_.Set(t0_ + 2000);
  ASSERT_TRUE(a.transport().WaitFor([](int n, int) { return n == 3; }));
  ASSERT_TRUE(b.transport().WaitFor([](int n, int) { return n == 2; }));
  WaitSleepers(3);
  EXPECT_TRUE(a.elector().IsLeader());
  EXPECT_FALSE(b.elector().IsLeader());
  a.Stop();
  a.Join();
  EXPECT_EQ(server_.Record().holder, "");
  // b's next attempt finds it released.
  AdvanceTo(4000, b, 4, 2);
  ASSERT_TRUE(b.seen.WaitFor([&] { return b.seen.started_at.has_value(); }));
  EXPECT_EQ(*b.seen.started_at, t0_ + 4000);
  EXPECT_EQ(server_.Record().holder, "b");
  EXPECT_EQ(server_.Record().transitions, 1);
}

TEST_F(LeaderElectionTest, APartitionedLeaderStopsBeforeAnotherTakesOver) {
  Candidate a(server_, clock_, "a");
  Candidate b(server_, clock_, "b");
  a.Start();
  ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.started_at.has_value(); }));
  WaitSleepers(2);
  b.Start();  // sees a's record at t0
  WaitSleepers(3);
  a.CutOff();
  for (int k = 1; k <= 7; ++k) {
    clock_.Set(t0_ + k * 2000);
    ASSERT_TRUE(b.transport().WaitFor([&](int n, int) { return n == 1 + k; }));
    if (k == 5) {
      ASSERT_TRUE(a.seen.WaitFor([&] { return a.seen.result.has_value(); }));
    }
    WaitSleepers(k < 5 ? 2 : 1);  // a's hung renewal leaves its watch
  }
  EXPECT_EQ(*a.seen.leading_stopped_at, t0_ + 10'000);
  EXPECT_FALSE(b.seen.started_at.has_value());
  AdvanceTo(16'000, b, 10, 2);
  ASSERT_TRUE(b.seen.WaitFor([&] { return b.seen.started_at.has_value(); }));
  EXPECT_EQ(*b.seen.started_at, t0_ + 16'000);
  EXPECT_EQ(server_.Record().holder, "b");
  EXPECT_EQ(server_.Record().transitions, 1);
}

TEST(LeaseConfigTest, RefusesWhatClientGoRefuses) {
  EXPECT_TRUE(ValidateLeaseConfig({"ns", "cruncher.dev", "me"}).ok());
  EXPECT_FALSE(ValidateLeaseConfig({"NS", "lock", "me"}).ok());
  EXPECT_FALSE(ValidateLeaseConfig({"ns", "lock/../x", "me"}).ok());
  EXPECT_FALSE(ValidateLeaseConfig({"ns", "lock", ""}).ok());
  EXPECT_FALSE(ValidateLeaseConfig({"ns", "lock", "a b"}).ok());
  EXPECT_FALSE(ValidateLeaseConfig({"ns", "lock", "caf\xc3"}).ok());
  EXPECT_FALSE(
      ValidateLeaseConfig({"ns", "lock", "me", 10'000, 10'000, 2'000}).ok());
  EXPECT_FALSE(
      ValidateLeaseConfig({"ns", "lock", "me", 15'000, 2'400, 2'000}).ok());
  EXPECT_FALSE(
      ValidateLeaseConfig({"ns", "lock", "me", 15'000, 10'000, 0}).ok());
  EXPECT_EQ(ValidateLeaseConfig({"ns", "lock", "me", 500, 400, 100}).code(),
            StatusCode::kInvalidArgument);
}

TEST(LeaseConfigTest, IdentitiesAreUniquePerCall) {
  const std::string a = DefaultLeaseIdentity();
  EXPECT_NE(a, DefaultLeaseIdentity());
  EXPECT_THAT(a, ::testing::MatchesRegex(".+_[0-9a-f]{16}"));
}

TEST(LeaseRecordTest, FormatsMicroTimeAndReadsSpecsDefensively) {
  EXPECT_EQ(FormatMicroTime(1'767'225'600'123), "2026-01-01T00:00:00.123000Z");
  EXPECT_EQ(FormatMicroTime(1'767'225'600'000), "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(ParseLeaseRecord(nlohmann::json::array()), LeaseRecord{});
  EXPECT_EQ(ParseLeaseRecord({{"spec", "x"}}), LeaseRecord{});
  LeaseRecord r = ParseLeaseRecord({{"spec",
                                     {{"holderIdentity", 5},
                                      {"leaseDurationSeconds", "15"},
                                      {"leaseTransitions", 2}}}});
  EXPECT_EQ(r.holder, "");
  EXPECT_EQ(r.duration_seconds, 0);
  EXPECT_EQ(r.transitions, 2);
}

}  // namespace
}  // namespace cruncher::kube
