#include "kube/exec_credential.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <deque>
#include <nlohmann/json.hpp>

#include "fakes/fake_clock.h"

namespace cruncher::kube {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// Returns scripted results and records the requests.
class FakeRunner final : public ProcessRunner {
 public:
  Result<ProcessResult> Run(const ProcessRequest& request) override {
    requests.push_back(request);
    if (results.empty()) return Internal("FakeRunner: no result scripted");
    auto r = results.front();
    results.pop_front();
    return r;
  }
  void Print(const std::string& stdout_data, int exit_code = 0,
             const std::string& stderr_tail = "") {
    results.push_back(ProcessResult{exit_code, stdout_data, stderr_tail});
  }
  std::deque<Result<ProcessResult>> results;
  std::vector<ProcessRequest> requests;
};

std::string Credential(const std::string& token, const std::string& expiry = "",
                       std::string_view version = kExecApiV1) {
  json status = {{"token", token}};
  if (!expiry.empty()) status["expirationTimestamp"] = expiry;
  return json{
      {"apiVersion", version}, {"kind", "ExecCredential"}, {"status", status}}
      .dump();
}

ExecConfig Config() {
  ExecConfig c;
  c.api_version = std::string(kExecApiV1);
  c.command = "get-token";
  c.args = {"--cluster", "demo"};
  c.env = {{"AWS_PROFILE", "dev"}};
  c.where = "kubeconfig /k: users[u].exec";
  c.install_hint = "install get-token\nfrom example.com";
  return c;
}

class ExecProviderTest : public ::testing::Test {
 protected:
  ExecCredentialProvider Make(ExecConfig config = Config()) {
    return ExecCredentialProvider(std::move(config),
                                  ExecClusterInfo{"https://k", "", false, "CA"},
                                  runner_, clock_);
  }
  // FakeClock starts at 2026-01-01T00:00:00Z.
  testing::FakeClock clock_;
  std::shared_ptr<FakeRunner> runner_ = std::make_shared<FakeRunner>();
};

TEST_F(ExecProviderTest, PassesArgsEnvAndExecInfo) {
  runner_->Print(Credential("t1"));
  auto provider = Make();
  auto creds = provider.Get();
  ASSERT_TRUE(creds.ok()) << creds.status().ToString();
  EXPECT_EQ(creds->token, "t1");
  ASSERT_EQ(runner_->requests.size(), 1u);
  const ProcessRequest& req = runner_->requests[0];
  EXPECT_EQ(req.command, "get-token");
  EXPECT_EQ(req.args, (std::vector<std::string>{"--cluster", "demo"}));
  EXPECT_EQ(req.timeout_ms, 60'000);
  ASSERT_EQ(req.env.size(), 2u);
  EXPECT_EQ(req.env[0],
            (std::pair<std::string, std::string>{"AWS_PROFILE", "dev"}));
  EXPECT_EQ(req.env[1].first, "KUBERNETES_EXEC_INFO");
  const json info = json::parse(req.env[1].second);
  EXPECT_EQ(info["apiVersion"], kExecApiV1);
  EXPECT_EQ(info["kind"], "ExecCredential");
  EXPECT_EQ(info["spec"]["interactive"], false);
  EXPECT_FALSE(info["spec"].contains("cluster"));  // provideClusterInfo off
}

TEST_F(ExecProviderTest, ProvideClusterInfo) {
  ExecConfig config = Config();
  config.provide_cluster_info = true;
  config.api_version = std::string(kExecApiV1Beta1);
  runner_->Print(Credential("t", "", kExecApiV1Beta1));
  auto provider = Make(config);
  ASSERT_TRUE(provider.Get().ok());
  const json info = json::parse(runner_->requests[0].env.back().second);
  EXPECT_EQ(info["apiVersion"], kExecApiV1Beta1);
  EXPECT_EQ(info["spec"]["cluster"]["server"], "https://k");
  EXPECT_EQ(info["spec"]["cluster"]["certificate-authority-data"], "Q0E=");
}

TEST_F(ExecProviderTest, CachesUntilShortlyBeforeExpiry) {
  runner_->Print(Credential("t1", "2026-01-01T00:15:00Z"));
  runner_->Print(Credential("t2", "2026-01-01T00:30:00Z"));
  auto provider = Make();
  EXPECT_EQ(provider.Get()->token, "t1");
  clock_.Advance(14 * 60'000);
  EXPECT_EQ(provider.Get()->token, "t1");
  EXPECT_EQ(runner_->requests.size(), 1u);
  // Within the 10 s margin of the expiry: run the plugin again.
  clock_.Advance(50'000);
  auto creds = provider.Get();
  EXPECT_EQ(creds->token, "t2");
  EXPECT_EQ(*creds->expires_at, 1'767'225'600'000 + 30 * 60'000);
  EXPECT_EQ(runner_->requests.size(), 2u);
}

// A credential that is already expired when handed out (clock skew) is used
// for a while rather than running the plugin for every request.
TEST_F(ExecProviderTest, AnAlreadyExpiredCredentialIsUsedForTheMinimumTime) {
  runner_->Print(Credential("t1", "2025-12-31T23:00:00Z"));  // an hour ago
  runner_->Print(Credential("t2", "2025-12-31T23:00:00Z"));
  runner_->Print(Credential("t3", "2025-12-31T23:00:00Z"));
  auto provider = Make();
  for (int i = 0; i < 50; ++i) EXPECT_EQ(provider.Get()->token, "t1");
  clock_.Advance(9'999);
  EXPECT_EQ(provider.Get()->token, "t1");
  EXPECT_EQ(runner_->requests.size(), 1u);
  clock_.Advance(1);
  EXPECT_EQ(provider.Get()->token, "t2");
  EXPECT_EQ(runner_->requests.size(), 2u);
  provider.Invalidate();  // a 401 still fetches at once
  EXPECT_EQ(provider.Get()->token, "t3");
  EXPECT_EQ(runner_->requests.size(), 3u);
}

TEST_F(ExecProviderTest, WithoutExpiryCachesUntilInvalidated) {
  runner_->Print(Credential("t1"));
  runner_->Print(Credential("t2"));
  auto provider = Make();
  EXPECT_EQ(provider.Get()->token, "t1");
  clock_.Advance(24 * 3600'000);
  EXPECT_EQ(provider.Get()->token, "t1");
  provider.Invalidate();  // the server answered 401
  EXPECT_EQ(provider.Get()->token, "t2");
  EXPECT_EQ(provider.Get()->token, "t2");
  EXPECT_EQ(runner_->requests.size(), 2u);
}

TEST_F(ExecProviderTest, KeepsUnexpiredCredentialsWhenRefreshFails) {
  runner_->Print(Credential("t1", "2026-01-01T00:15:00Z"));
  runner_->Print("", 1, "throttled");
  runner_->Print("", 1, "still failing");
  auto provider = Make();
  EXPECT_EQ(provider.Get()->token, "t1");
  clock_.Advance(15 * 60'000 - 5'000);  // inside the margin, not expired
  EXPECT_EQ(provider.Get()->token, "t1");
  clock_.Advance(5'000);  // expired: the error comes through
  auto r = provider.Get();
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("still failing"));
}

TEST_F(ExecProviderTest, ClientCertificateCredentials) {
  runner_->Print(
      json{{"apiVersion", kExecApiV1},
           {"kind", "ExecCredential"},
           {"status",
            {{"clientCertificateData", "CERT"},
             {"clientKeyData", "KEY"},
             {"expirationTimestamp", "2026-01-01T01:00:00.250+01:00"}}}}
          .dump());
  auto provider = Make();
  auto creds = provider.Get();
  ASSERT_TRUE(creds.ok()) << creds.status().ToString();
  EXPECT_TRUE(creds->token.empty());
  EXPECT_EQ(creds->client_certificate_pem, "CERT");
  EXPECT_EQ(creds->client_key_pem, "KEY");
  EXPECT_EQ(*creds->expires_at, 1'767'225'600'250);
}

TEST_F(ExecProviderTest, PluginFailuresAreOneLineErrors) {
  struct Case {
    Result<ProcessResult> result;
    std::string expected;
  };
  const std::string v1(kExecApiV1);
  std::vector<Case> cases = {
      {ProcessResult{2, "", "line one\nError: token expired\n"},
       "exited with status 2: line one | Error: token expired"},
      {ProcessResult{0, "garbage", ""}, "output is not JSON"},
      {ProcessResult{0, "[1,2]", ""}, "not a JSON object"},
      {ProcessResult{0, R"({"kind":"Secret","apiVersion":")" + v1 + "\"}", ""},
       "kind is \"Secret\", not \"ExecCredential\""},
      {ProcessResult{0, Credential("t", "", kExecApiV1Beta1), ""},
       "apiVersion is \"client.authentication.k8s.io/v1beta1\", but the "
       "kubeconfig asks for \"client.authentication.k8s.io/v1\""},
      {ProcessResult{
           0, R"({"kind":"ExecCredential","apiVersion":")" + v1 + "\"}", ""},
       "no status object"},
      {ProcessResult{0, Credential(""), ""}, "neither a token nor"},
      {ProcessResult{0,
                     R"({"kind":"ExecCredential","apiVersion":")" + v1 +
                         R"(","status":{"token":5}})",
                     ""},
       "status.token is not a string"},
      // A CR or LF would end the Authorization header and start another.
      {ProcessResult{0, Credential("tok\r\nX-Injected: yes"), ""},
       "status.token: the token contains a control character (byte 0x0d at "
       "offset 3)"},
      {ProcessResult{0,
                     R"({"kind":"ExecCredential","apiVersion":")" + v1 +
                         R"(","status":{"clientKeyData":"k"}})",
                     ""},
       "only one of clientCertificateData and clientKeyData"},
      {ProcessResult{0, Credential("t", "tomorrow"), ""},
       "status.expirationTimestamp: \"tomorrow\" is not an RFC 3339 time"},
      {NotFound("cannot run \"get-token\": No such file or directory"),
       "No such file or directory (install get-token | from example.com)"},
      {Unavailable("\"get-token\" did not finish within 60 s; killed"),
       "did not finish within 60 s"},
  };
  for (auto& c : cases) {
    runner_->results.push_back(c.result);
    auto provider = Make();
    auto r = provider.Get();
    ASSERT_FALSE(r.ok()) << c.expected;
    EXPECT_THAT(
        r.status().message(),
        HasSubstr("kubeconfig /k: users[u].exec: plugin \"get-token\": "))
        << c.expected;
    EXPECT_THAT(r.status().message(), HasSubstr(c.expected));
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos)
        << r.status().message();
  }
}

TEST(ExecCredentialParse, NeverQuotesTheOutput) {
  auto r = ParseExecCredential("secret-token-value-xyz", kExecApiV1);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().find("secret"), std::string::npos);
}

}  // namespace
}  // namespace cruncher::kube
