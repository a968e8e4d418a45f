// Our side of bench/kube_create (see its README for the contract): creates
// Jobs with C workers through the Kubernetes client Cruncher uses, or runs
// its informer until it caches N Jobs and reports the peak RSS.
// `create --manifests FILE` creates the Jobs of FILE (one manifest per line)
// instead of the contract's template: bench/watch measures the ceiling for
// `cruncher watch` with the very Jobs the controller rendered.
#include <atomic>
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "kube/job_client.h"
#include "kube/job_informer.h"
#include "kube/kubeconfig.h"
#include "kube/process_runner.h"
#include "kube/rest_client.h"
#include "net/http_transport.h"

namespace cruncher::kube {
namespace {

struct Args {
  std::string command, kubeconfig, ns, prefix = "job", manifests;
  long count = 0, concurrency = 1, expect = 0;
};

int Usage() {
  std::cerr << "usage: kube_create_bench create --kubeconfig K --namespace NS "
               "--count N --concurrency C --prefix P\n"
               "       kube_create_bench create --kubeconfig K --namespace NS "
               "--manifests FILE --concurrency C\n"
               "       kube_create_bench cache --kubeconfig K --namespace NS "
               "--expect N\n";
  return 2;
}

nlohmann::json JobManifest(const std::string& name, long i) {
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata",
           {{"name", name},
            {"labels",
             {{"app.kubernetes.io/managed-by", "cruncher"},
              {"cruncher.dev/queue", "bench"}}},
            {"annotations",
             {{"task", nlohmann::json({{"duration", "10"},
                                       {"target", "host-" + std::to_string(i)}})
                           .dump()}}}}},
          {"spec",
           {{"suspend", true},
            {"backoffLimit", 2},
            {"template",
             {{"spec",
               {{"restartPolicy", "Never"},
                {"containers",
                 {{{"name", "task"},
                   {"image", "busybox"},
                   {"command", {"sh", "-c", "echo hi"}},
                   {"resources",
                    {{"requests",
                      {{"cpu", "100m"}, {"memory", "100M"}}}}}}}}}}}}}}};
}

long VmHwmKb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
      .count();
}

int Main(int argc, char** argv) {
  if (argc < 2) return Usage();
  Args a;
  a.command = argv[1];
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--kubeconfig")
      a.kubeconfig = value;
    else if (flag == "--namespace")
      a.ns = value;
    else if (flag == "--prefix")
      a.prefix = value;
    else if (flag == "--manifests")
      a.manifests = value;
    else if (flag == "--count")
      a.count = std::stol(value);
    else if (flag == "--concurrency")
      a.concurrency = std::stol(value);
    else if (flag == "--expect")
      a.expect = std::stol(value);
    else
      return Usage();
  }
  KubeConfigOptions config_options;
  config_options.kubeconfig = a.kubeconfig;
  config_options.namespace_override = a.ns;
  config_options.env = ProcessEnvironment();
  auto config = LoadClusterConfig(config_options);
  if (!config.ok()) {
    std::cerr << config.status().ToString() << "\n";
    return 1;
  }
  auto credentials = NewCredentialProvider(
      *config, std::make_shared<SubprocessRunner>(), SystemClock::Get());
  if (!credentials.ok()) {
    std::cerr << credentials.status().ToString() << "\n";
    return 1;
  }
  RestOptions options;  // no client-side limit: as client-go with QPS -1
  options.qps = 1e9;
  options.burst = 1'000'000'000;
  auto rest = RestClient::Create(*config, *credentials,
                                 std::make_shared<net::CurlHttpTransport>(),
                                 SystemClock::Get(), options);
  if (!rest.ok()) {
    std::cerr << rest.status().ToString() << "\n";
    return 1;
  }
  JobClient jobs(**rest, (*rest)->namespace_name());

  if (a.command == "create") {
    std::vector<nlohmann::json> given;
    if (!a.manifests.empty()) {
      std::ifstream in(a.manifests);
      if (!in) {
        std::cerr << "cannot read " << a.manifests << "\n";
        return 1;
      }
      for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        auto manifest = nlohmann::json::parse(line, nullptr, false);
        if (!manifest.is_object()) {
          std::cerr << a.manifests << " line " << given.size() + 1
                    << ": not a JSON object\n";
          return 1;
        }
        given.push_back(std::move(manifest));
      }
      a.count = static_cast<long>(given.size());
    }
    std::atomic<long> next{0};
    std::atomic<long> created{0};
    std::atomic<bool> failed{false};
    const auto t0 = std::chrono::steady_clock::now();
    {
      std::vector<std::jthread> workers;
      for (long w = 0; w < a.concurrency; ++w) {
        workers.emplace_back([&] {
          for (long i = next++; i < a.count && !failed; i = next++) {
            auto job = given.empty()
                           ? jobs.Create(JobManifest(
                                 a.prefix + "-" + std::to_string(i), i))
                           : jobs.Create(given[i]);
            if (!job.ok()) {
              std::cerr << job.status().ToString() << "\n";
              failed = true;
              return;
            }
            ++created;
          }
        });
      }
    }
    const double seconds = SecondsSince(t0);
    if (failed) return 1;
    std::cout << nlohmann::json(
                     {{"created", created.load()}, {"seconds", seconds}})
                     .dump()
              << "\n";
    return 0;
  }
  if (a.command == "cache") {
    JobInformer informer(jobs, "app.kubernetes.io/managed-by=cruncher",
                         SystemClock::Get());
    const auto t0 = std::chrono::steady_clock::now();
    std::stop_source stop;
    std::jthread runner([&] { informer.Run(stop.get_token()); });
    while (static_cast<long>(informer.size()) < a.expect) {
      if (SecondsSince(t0) > 600) {
        std::cerr << "cached " << informer.size() << " of " << a.expect
                  << " Jobs after 600 s\n";
        stop.request_stop();
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const double seconds = SecondsSince(t0);
    const long hwm = VmHwmKb();
    const auto lists = informer.lists();
    stop.request_stop();
    runner.join();
    std::cout << nlohmann::json({{"cached", informer.size()},
                                 {"seconds", seconds},
                                 {"vmhwm_kb", hwm},
                                 {"lists", lists}})
                     .dump()
              << "\n";
    return 0;
  }
  return Usage();
}

}  // namespace
}  // namespace cruncher::kube

int main(int argc, char** argv) {
  try {
    return cruncher::kube::Main(argc, argv);
  } catch (const std::exception& e) {  // std::stol on a bad number
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
}
