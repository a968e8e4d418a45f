// cruncher_sqs_endpoint_test_server: a LocalQueueStore behind an SqsEndpoint,
// for the integration tests and the benchmark (independent of the CLI).
//
// Usage: cruncher_sqs_endpoint_test_server DATA_DIR [PORT] [options]
//   PORT 0 (default) picks a free port. Options:
//   --auth KEY:SECRET     require SigV4 with this key (repeatable)
//   --durability full|normal   SQLite commit durability (default full)
//   --host ADDR           bind address (default 127.0.0.1)
//   --region REGION       the endpoint's configured region (default us-east-1)
// Prints "PORT <n>" on stdout once serving, then runs until SIGTERM/SIGINT.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "local/queue_store.h"
#include "sqs_endpoint/sqs_endpoint.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr
        << "usage: " << argv[0]
        << " DATA_DIR [PORT] [--auth KEY:SECRET] [--durability full|normal]"
           " [--host ADDR] [--region REGION]\n";
    return 2;
  }
  // Block the stop signals before any thread starts, then wait for one.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  cruncher::sqs::SqsEndpointOptions options;
  options.port = 0;
  auto durability = cruncher::local::Durability::kFull;
  int i = 2;
  if (i < argc && argv[i][0] != '-') options.port = std::atoi(argv[i++]);
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "missing value for " << arg << "\n";
      return 2;
    }
    std::string value = argv[++i];
    if (arg == "--auth") {
      auto colon = value.find(':');
      if (colon == std::string::npos) {
        std::cerr << "--auth takes KEY:SECRET\n";
        return 2;
      }
      options.require_auth = true;
      options.credentials[value.substr(0, colon)] = value.substr(colon + 1);
    } else if (arg == "--durability") {
      if (value != "full" && value != "normal") {
        std::cerr << "--durability takes full or normal\n";
        return 2;
      }
      durability = value == "full" ? cruncher::local::Durability::kFull
                                   : cruncher::local::Durability::kNormal;
    } else if (arg == "--host") {
      options.host = value;
    } else if (arg == "--region") {
      options.region = value;
    } else {
      std::cerr << "unknown option " << arg << "\n";
      return 2;
    }
  }
  auto store = cruncher::local::LocalQueueStore::Open(argv[1], durability);
  if (!store.ok()) {
    std::cerr << "open store: " << store.status().ToString() << "\n";
    return 1;
  }
  auto endpoint = cruncher::sqs::SqsEndpoint::Start(**store, options);
  if (!endpoint.ok()) {
    std::cerr << "start endpoint: " << endpoint.status().ToString() << "\n";
    return 1;
  }
  std::cout << "PORT " << (*endpoint)->port() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  (*endpoint)->Stop();
  return 0;
}
