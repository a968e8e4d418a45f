// Helpers shared by the cluster tests of src/kube: a RestClient on the
// cluster of $KUBECONFIG (as with-cluster.sh exports it), kubectl's output
// as JSON, and Kubernetes timestamps as milliseconds.
#ifndef CRUNCHER_TESTS_KUBE_CLUSTER_TEST_UTIL_H_
#define CRUNCHER_TESTS_KUBE_CLUSTER_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <time.h>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/clock.h"
#include "kube/kubeconfig.h"
#include "kube/process_runner.h"
#include "kube/rest_client.h"
#include "net/http_transport.h"

namespace cruncher::kube::testing {

// A client on the test cluster, or null with a test failure recorded.
inline std::unique_ptr<RestClient> ClusterClient() {
  KubeConfigOptions options;
  options.env = ProcessEnvironment();
  auto config = LoadClusterConfig(options);
  EXPECT_TRUE(config.ok())
      << config.status().ToString()
      << " (run through tools/testcluster/with-cluster.sh)";
  if (!config.ok()) return nullptr;
  auto credentials = NewCredentialProvider(
      *config, std::make_shared<SubprocessRunner>(), SystemClock::Get());
  EXPECT_TRUE(credentials.ok()) << credentials.status().ToString();
  if (!credentials.ok()) return nullptr;
  auto client = RestClient::Create(*config, *credentials,
                                   std::make_shared<net::CurlHttpTransport>(),
                                   SystemClock::Get());
  EXPECT_TRUE(client.ok()) << client.status().ToString();
  if (!client.ok()) return nullptr;
  return std::move(*client);
}

// Runs `kubectl ARGS -o json` and parses its output; null (and a test
// failure) when it fails.
inline nlohmann::json Kubectl(const std::string& args) {
  const std::string command = "kubectl " + args + " -o json";
  FILE* pipe = ::popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  std::size_t n;
  while (pipe != nullptr &&
         (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    out.append(buffer, n);
  }
  const int rc = pipe == nullptr ? -1 : ::pclose(pipe);
  EXPECT_EQ(rc, 0) << command;
  auto parsed = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(parsed.is_discarded()) << command << ": " << out;
  return rc == 0 && !parsed.is_discarded() ? parsed : nlohmann::json();
}

// "2026-12-01T01:51:38.123456Z" (or without a fraction) as milliseconds
// since the epoch; -1 when malformed.
inline Millis ParseTimestamp(const std::string& text) {
  std::tm tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) return -1;
  Millis ms = static_cast<Millis>(::timegm(&tm)) * 1000;
  if (*rest == '.') {
    int scale = 100;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest, scale /= 10) {
      ms += (*rest - '0') * scale;
    }
  }
  return *rest == 'Z' ? ms : -1;
}

}  // namespace cruncher::kube::testing

#endif  // CRUNCHER_TESTS_KUBE_CLUSTER_TEST_UTIL_H_
