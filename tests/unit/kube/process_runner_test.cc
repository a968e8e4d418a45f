// The real runner against real child processes, and a real exec plugin (a
// shell script) through ExecCredentialProvider.
#include "kube/process_runner.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "fakes/fake_clock.h"
#include "fakes/test_util.h"
#include "kube/exec_credential.h"

namespace cruncher::kube {
namespace {

using ::testing::HasSubstr;

class SubprocessRunnerTest : public ::testing::Test {
 protected:
  std::string Script(const std::string& name, const std::string& body) {
    const std::string path = dir_.path() + "/" + name;
    std::ofstream(path) << "#!/bin/sh\n" << body;
    ::chmod(path.c_str(), 0755);
    return path;
  }
  Result<ProcessResult> Sh(const std::string& body, Millis timeout_ms = 10'000,
                           std::size_t max_stdout = 1 << 20) {
    ProcessRequest req;
    req.command = Script("run.sh", body);
    req.timeout_ms = timeout_ms;
    req.max_stdout_bytes = max_stdout;
    return runner_.Run(req);
  }
  testing::TempDir dir_;
  SubprocessRunner runner_;
};

TEST_F(SubprocessRunnerTest, CollectsOutputExitCodeArgsAndEnv) {
  ProcessRequest req;
  req.command = Script("p.sh",
                       "printf '%s|' \"$@\"; echo \"$EXTRA\"; echo err >&2;"
                       " cat; exit 3\n");
  req.args = {"a b", "$HOME", "'q'"};
  req.env = {{"EXTRA", "value with spaces"}};
  auto r = runner_.Run(req);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // No shell between us and the plugin: arguments arrive verbatim; stdin is
  // /dev/null, so `cat` ends at once.
  EXPECT_EQ(r->stdout_data, "a b|$HOME|'q'|value with spaces\n");
  EXPECT_EQ(r->stderr_tail, "err\n");
  EXPECT_EQ(r->exit_code, 3);
}

TEST_F(SubprocessRunnerTest, InheritsEnvironmentAndOverrides) {
  ::setenv("CRUNCHER_KUBE_TEST_PARENT", "parent", 1);
  ::setenv("CRUNCHER_KUBE_TEST_OVERRIDE", "old", 1);
  ProcessRequest req;
  req.command = "env";  // prints exactly the environment it was given
  req.env = {{"CRUNCHER_KUBE_TEST_OVERRIDE", "first"},
             {"CRUNCHER_KUBE_TEST_OVERRIDE", "new"}};
  auto r = runner_.Run(req);
  ASSERT_TRUE(r.ok());
  std::istringstream lines(r->stdout_data);
  std::vector<std::string> ours;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("CRUNCHER_KUBE_TEST_", 0) == 0) ours.push_back(line);
  }
  std::sort(ours.begin(), ours.end());
  EXPECT_EQ(ours,
            (std::vector<std::string>{"CRUNCHER_KUBE_TEST_OVERRIDE=new",
                                      "CRUNCHER_KUBE_TEST_PARENT=parent"}));
}

TEST_F(SubprocessRunnerTest, SignalExitCode) {
  auto r = Sh("kill -9 $$\n");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 128 + 9);
}

TEST_F(SubprocessRunnerTest, CommandNotFound) {
  ProcessRequest req;
  req.command = "cruncher-no-such-plugin";
  auto r = runner_.Run(req);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  req.command = dir_.path() + "/missing.sh";
  EXPECT_EQ(runner_.Run(req).status().code(), StatusCode::kNotFound);
  std::ofstream(dir_.path() + "/noexec.sh") << "#!/bin/sh\n";
  req.command = dir_.path() + "/noexec.sh";
  EXPECT_EQ(runner_.Run(req).status().code(), StatusCode::kNotFound);
}

TEST_F(SubprocessRunnerTest, KillsAPluginThatHangsWithItsChildren) {
  const std::string pidfile = dir_.path() + "/child.pid";
  const auto start = std::chrono::steady_clock::now();
  auto r = Sh("sleep 60 & echo $! > " + pidfile + "; wait\n", 300);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("within 300 ms; killed"));
  EXPECT_LT(took, std::chrono::seconds(10));
  // The grandchild, in the plugin's process group, was killed too.
  const pid_t child = std::stoi(testing::ReadFile(pidfile));
  EXPECT_TRUE(testing::WaitFor([&] {
    const std::string stat =
        testing::ReadFile("/proc/" + std::to_string(child) + "/stat");
    return stat.empty() || stat.find(") Z") != std::string::npos;
  }));
}

TEST_F(SubprocessRunnerTest, BoundsStdout) {
  auto r = Sh("yes credential\n", 10'000, 64 * 1024);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("more than 65536 bytes"));
}

TEST_F(SubprocessRunnerTest, KeepsTheTailOfStderr) {
  auto r =
      Sh("i=0; while [ $i -lt 2000 ]; do echo \"line $i\" >&2; "
         "i=$((i+1)); done; exit 1\n");
  ASSERT_TRUE(r.ok());
  EXPECT_LE(r->stderr_tail.size(), kStderrTailBytes);
  EXPECT_THAT(r->stderr_tail, ::testing::EndsWith("line 1999\n"));
}

TEST_F(SubprocessRunnerTest, DoesNotWaitForAGrandchildHoldingThePipes) {
  const auto start = std::chrono::steady_clock::now();
  auto r = Sh("(sleep 30 &) ; echo done\n", 20'000);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "done\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

// A real exec plugin: prints an ExecCredential whose token changes on every
// run, and records what it was given.
TEST_F(SubprocessRunnerTest, RealExecPluginThroughTheProvider) {
  const std::string counter = dir_.path() + "/count";
  const std::string seen = dir_.path() + "/seen";
  ExecConfig config;
  config.api_version = std::string(kExecApiV1);
  config.command = Script(
      "plugin.sh",
      "n=$(cat " + counter + " 2>/dev/null || echo 0); n=$((n+1)); echo $n > " +
          counter +
          "\n"
          "printf '%s\\n' \"$1\" \"$PLUGIN_MODE\" \"$KUBERNETES_EXEC_INFO\" "
          "> " +
          seen +
          "\n"
          "cat <<EOF\n"
          "{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": "
          "\"ExecCredential\",\n"
          " \"status\": {\"token\": \"token-$n\", \"expirationTimestamp\": "
          "\"2026-01-01T00:15:00Z\"}}\n"
          "EOF\n");
  config.args = {"--region=eu"};
  config.env = {{"PLUGIN_MODE", "test"}};
  config.provide_cluster_info = true;
  config.where = "kubeconfig k: users[u].exec";
  testing::FakeClock clock;  // 2026-01-01T00:00:00Z
  ExecCredentialProvider provider(
      config, ExecClusterInfo{"https://127.0.0.1:6443", "", false, "PEM"},
      std::make_shared<SubprocessRunner>(), clock);
  auto creds = provider.Get();
  ASSERT_TRUE(creds.ok()) << creds.status().ToString();
  EXPECT_EQ(creds->token, "token-1");
  EXPECT_EQ(provider.Get()->token, "token-1");  // cached
  provider.Invalidate();
  EXPECT_EQ(provider.Get()->token, "token-2");
  clock.Advance(15 * 60'000);  // expired
  EXPECT_EQ(provider.Get()->token, "token-3");

  std::istringstream lines(testing::ReadFile(seen));
  std::string arg, mode, info;
  std::getline(lines, arg);
  std::getline(lines, mode);
  std::getline(lines, info);
  EXPECT_EQ(arg, "--region=eu");
  EXPECT_EQ(mode, "test");
  const auto exec_info = nlohmann::json::parse(info);
  EXPECT_EQ(exec_info["spec"]["cluster"]["server"], "https://127.0.0.1:6443");
  EXPECT_EQ(exec_info["spec"]["interactive"], false);
}

TEST_F(SubprocessRunnerTest, RealExecPluginFailure) {
  ExecConfig config;
  config.api_version = std::string(kExecApiV1);
  config.command = Script("fail.sh",
                          "echo 'Unable to locate credentials.' >&2\n"
                          "echo 'You can configure credentials by running "
                          "\"aws configure\".' >&2\nexit 255\n");
  config.where = "kubeconfig k: users[u].exec";
  testing::FakeClock clock;
  ExecCredentialProvider provider(config, ExecClusterInfo{},
                                  std::make_shared<SubprocessRunner>(), clock);
  auto r = provider.Get();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("exited with status 255: Unable to locate credentials. "
                        "| You can configure credentials"));
}

}  // namespace
}  // namespace cruncher::kube
