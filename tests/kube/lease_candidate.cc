// A leader election candidate for kube_lease_cluster_test: runs a
// LeaderElector on the cluster of $KUBECONFIG with client-go's default
// durations and prints one JSON line per change, with the wall-clock time:
//
//   {"event":"started_leading","identity":"a","at_ms":1767225600123}
//   {"event":"stopped_leading","identity":"a","at_ms":...}
//   {"event":"exit","identity":"a","status":"OK"}
//
// SIGTERM or SIGINT stops it cleanly (the Lease is released); the test
// kills it with SIGKILL to play a crashed leader.
//
// Usage: lease_candidate IDENTITY LEASE_NAME [NAMESPACE]
#include <signal.h>

#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <thread>

#include "core/clock.h"
#include "kube/kubeconfig.h"
#include "kube/leader_election.h"
#include "kube/process_runner.h"
#include "kube/rest_client.h"
#include "net/http_transport.h"

namespace {

std::mutex out_mu;

void Print(const std::string& event, const std::string& identity,
           nlohmann::json extra = nlohmann::json::object()) {
  extra["event"] = event;
  extra["identity"] = identity;
  extra["at_ms"] = cruncher::SystemClock::Get().NowMillis();
  std::lock_guard<std::mutex> lock(out_mu);
  std::cout << extra.dump() << std::endl;  // flushed: a pipe reads it
}

}  // namespace

int main(int argc, char** argv) {
  using namespace cruncher;
  using namespace cruncher::kube;
  if (argc < 3) {
    std::cerr << "usage: lease_candidate IDENTITY LEASE_NAME [NAMESPACE]\n";
    return 2;
  }
  const std::string identity = argv[1];
  // Signals are taken by a thread with sigwait, so they turn into a stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  KubeConfigOptions options;
  options.env = ProcessEnvironment();
  auto config = LoadClusterConfig(options);
  if (!config.ok()) {
    std::cerr << config.status().ToString() << "\n";
    return 1;
  }
  const Clock& clock = SystemClock::Get();
  auto credentials = NewCredentialProvider(
      *config, std::make_shared<SubprocessRunner>(), clock);
  if (!credentials.ok()) {
    std::cerr << credentials.status().ToString() << "\n";
    return 1;
  }
  auto client = RestClient::Create(
      *config, *credentials, std::make_shared<net::CurlHttpTransport>(), clock);
  if (!client.ok()) {
    std::cerr << client.status().ToString() << "\n";
    return 1;
  }
  LeaseConfig lease;
  lease.namespace_name = argc > 3 ? argv[3] : "default";
  lease.name = argv[2];
  lease.identity = identity;
  LeaderElector elector(**client, lease, clock);

  std::stop_source stop;
  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    stop.request_stop();
  });
  waiter.detach();  // ends with the process

  Status status = elector.Run(
      stop.get_token(),
      [&](const std::stop_token& leading) {
        Print("started_leading", identity);
        std::mutex mu;
        std::condition_variable_any cv;
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, leading, [] { return false; });
      },
      [&] { Print("stopped_leading", identity); });
  Print("exit", identity, {{"status", status.ToString()}});
  return status.ok() ? 0 : 1;
}
