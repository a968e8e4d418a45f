// Leader election on the real test cluster (tools/testcluster), with
// client-go's default durations: two lease_candidate processes contend for
// one Lease; exactly one leads; after the leader is killed with SIGKILL (no
// release) the other takes over once the old lease has expired by its own
// observation, and a clean stop releases the Lease.
//
// Run through tools/testcluster/with-cluster.sh (exports KUBECONFIG; puts
// the server's kubectl first on PATH).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cluster_test_util.h"
#include "core/clock.h"

extern char** environ;

namespace cruncher::kube {
namespace {

using testing::Kubectl;
using testing::ParseTimestamp;

constexpr const char* kLease = "cruncher-lease-test";
// client-go's defaults, which the candidates use.
constexpr Millis kLeaseDuration = 15'000;
constexpr Millis kRetryPeriod = 2'000;
// Scheduling and API latency on a busy 2-core machine.
constexpr Millis kSlack = 1'500;

Millis Now() { return SystemClock::Get().NowMillis(); }

// One lease_candidate process and the JSON lines it printed.
class Candidate {
 public:
  explicit Candidate(std::string identity) : identity_(std::move(identity)) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<std::string> args = {CRUNCHER_LEASE_CANDIDATE, identity_,
                                     kLease};
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    EXPECT_EQ(
        ::posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ),
        0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    fd_ = fds[0];
  }
  ~Candidate() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(fd_);
  }

  const std::string& identity() const { return identity_; }

  // Reads what the process printed within `wait_ms`.
  void Pump(Millis wait_ms) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait_ms)) <= 0) return;
    char buffer[4096];
    const ssize_t n = ::read(fd_, buffer, sizeof buffer);
    if (n <= 0) return;
    partial_.append(buffer, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = partial_.find('\n')) != std::string::npos) {
      auto line = nlohmann::json::parse(partial_.substr(0, nl), nullptr,
                                        /*allow_exceptions=*/false);
      partial_.erase(0, nl + 1);
      if (line.is_object()) lines_.push_back(std::move(line));
    }
  }

  // The first line with `event`, if printed by now.
  std::optional<nlohmann::json> Seen(const std::string& event) const {
    for (const auto& line : lines_) {
      if (line.value("event", "") == event) return line;
    }
    return std::nullopt;
  }

  // Waits up to `timeout_ms` for a line with `event`.
  std::optional<nlohmann::json> WaitFor(const std::string& event,
                                        Millis timeout_ms) {
    const Millis deadline = Now() + timeout_ms;
    while (!Seen(event) && Now() < deadline) Pump(100);
    return Seen(event);
  }

  // Sends `signal` and waits for the process; its wait status.
  int KillAndWait(int signal) {
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    while (true) {  // what it printed before exiting
      const std::size_t before = lines_.size() + partial_.size();
      Pump(0);
      if (lines_.size() + partial_.size() == before) break;
    }
    return status;
  }

 private:
  std::string identity_;
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string partial_;
  std::deque<nlohmann::json> lines_;
};

nlohmann::json LeaseSpec() {
  nlohmann::json lease = Kubectl(std::string("-n default get lease ") + kLease);
  return lease.is_object() ? lease.value("spec", nlohmann::json::object())
                           : nlohmann::json::object();
}

TEST(KubeLeaseClusterTest, OneLeadsAndAnotherTakesOverAfterACrash) {
  Candidate a("candidate-a");
  Candidate b("candidate-b");

  // Exactly one leads (both start on an absent Lease: one creates it, the
  // other's create meets 409 and then finds it held).
  Candidate* leader = nullptr;
  const Millis deadline = Now() + 30'000;
  while (leader == nullptr && Now() < deadline) {
    a.Pump(50);
    b.Pump(50);
    if (a.Seen("started_leading")) leader = &a;
    if (b.Seen("started_leading")) leader = &b;
  }
  ASSERT_NE(leader, nullptr) << "no candidate started leading in 30 s";
  Candidate* follower = leader == &a ? &b : &a;
  // Three retry periods: the follower keeps trying and keeps refusing.
  EXPECT_FALSE(follower->WaitFor("started_leading", 3 * kRetryPeriod));
  EXPECT_FALSE(leader->Seen("stopped_leading"));
  nlohmann::json spec = LeaseSpec();
  EXPECT_EQ(spec.value("holderIdentity", ""), leader->identity());
  EXPECT_EQ(spec.value("leaseDurationSeconds", 0), 15);
  EXPECT_EQ(spec.value("leaseTransitions", -1), 0);

  // A crash: no release. The last renewal the leader wrote is where the
  // follower's count starts (it cannot have seen it earlier).
  const int killed = leader->KillAndWait(SIGKILL);
  const Millis killed_at = Now();
  EXPECT_TRUE(WIFSIGNALED(killed) && WTERMSIG(killed) == SIGKILL);
  spec = LeaseSpec();
  EXPECT_EQ(spec.value("holderIdentity", ""), leader->identity());
  const Millis renewed_at = ParseTimestamp(spec.value("renewTime", ""));
  ASSERT_GT(renewed_at, 0) << spec.dump();
  ASSERT_LE(renewed_at, killed_at);

  auto started = follower->WaitFor("started_leading", 30'000);
  ASSERT_TRUE(started) << "the follower did not take over within 30 s";
  const Millis took_over_at = (*started)["at_ms"].get<Millis>();
  std::cout << "follower leads " << took_over_at - killed_at
            << " ms after the kill, " << took_over_at - renewed_at
            << " ms after the last renewal\n";
  // Not before the lease expired by the follower's observation: it saw the
  // last renewal no earlier than it was written.
  EXPECT_GE(took_over_at, renewed_at + kLeaseDuration);
  // It sees the last renewal at its next poll (≤ a retry period later) and
  // takes the Lease at its first poll more than the lease duration after
  // that: ≤ lease duration + 2 retry periods after the renewal, hence after
  // the kill.
  EXPECT_LE(took_over_at - renewed_at,
            kLeaseDuration + 2 * kRetryPeriod + kSlack);
  EXPECT_LE(took_over_at - killed_at,
            kLeaseDuration + 2 * kRetryPeriod + kSlack);

  spec = LeaseSpec();
  EXPECT_EQ(spec.value("holderIdentity", ""), follower->identity());
  EXPECT_EQ(spec.value("leaseTransitions", -1), 1);
  EXPECT_EQ(spec.value("leaseDurationSeconds", 0), 15);
  EXPECT_GE(ParseTimestamp(spec.value("acquireTime", "")), renewed_at);

  // A clean stop: leadership ends, the Lease is released for a successor.
  const int stopped = follower->KillAndWait(SIGTERM);
  EXPECT_TRUE(WIFEXITED(stopped) && WEXITSTATUS(stopped) == 0);
  EXPECT_TRUE(follower->Seen("stopped_leading"));
  auto exit = follower->Seen("exit");
  ASSERT_TRUE(exit);
  EXPECT_EQ((*exit).value("status", ""), "OK");
  spec = LeaseSpec();
  EXPECT_EQ(spec.value("holderIdentity", ""), "");
  EXPECT_EQ(spec.value("leaseDurationSeconds", 0), 1);
  EXPECT_EQ(spec.value("leaseTransitions", -1), 1);

  // A released Lease is taken at once, not after the lease duration.
  Candidate c("candidate-c");
  const Millis c_started = Now();
  auto c_leads = c.WaitFor("started_leading", 10'000);
  ASSERT_TRUE(c_leads);
  EXPECT_LE((*c_leads)["at_ms"].get<Millis>() - c_started, 5'000);
  EXPECT_EQ(LeaseSpec().value("leaseTransitions", -1), 2);
}

}  // namespace
}  // namespace cruncher::kube
