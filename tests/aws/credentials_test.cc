#include "aws/credentials.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "aws/aws_config.h"
#include "aws/encoding.h"
#include "fakes/fake_http_transport.h"
#include "fakes/test_util.h"
#include "test_http_server.h"

namespace cruncher::aws {
namespace {

using cruncher::testing::FakeHttpTransport;
using cruncher::testing::TempDir;
using testing::TestHttpReply;
using testing::TestHttpRequest;
using testing::TestHttpServer;

std::shared_ptr<net::HttpTransport> NoNetwork() {
  return std::make_shared<FakeHttpTransport>(
      [](const net::HttpRequest& r, int) {
        ADD_FAILURE() << "unexpected request to " << r.url;
        return FakeHttpTransport::ConnectionFailure(r);
      });
}

// An environment whose shared files live in `dir` (and do not exist unless
// written), with IMDS disabled.
EnvVars IsolatedEnv(const TempDir& dir) {
  return {{"HOME", dir.path()},
          {"AWS_CONFIG_FILE", dir.path() + "/config"},
          {"AWS_SHARED_CREDENTIALS_FILE", dir.path() + "/credentials"},
          {"AWS_EC2_METADATA_DISABLED", "true"}};
}

Result<AwsCredentials> Resolve(const EnvVars& env,
                               std::shared_ptr<net::HttpTransport> transport,
                               const std::string& profile = "") {
  CredentialChainOptions options;
  options.env = env;
  options.profile = profile;
  options.transport = std::move(transport);
  auto provider = DefaultCredentialsChain(options);
  if (!provider.ok()) return provider.status();
  return (*provider)->GetCredentials(SystemClock::Get().NowMillis());
}

TEST(CredentialsTest, EnvironmentComesFirst) {
  TempDir dir;
  dir.Write("credentials",
            "[default]\naws_access_key_id = FROMFILE\n"
            "aws_secret_access_key = filesecret\n");
  EnvVars env = IsolatedEnv(dir);
  env["AWS_ACCESS_KEY_ID"] = "AKIAENV";
  env["AWS_SECRET_ACCESS_KEY"] = "envsecret";
  env["AWS_SESSION_TOKEN"] = "envtoken";
  auto creds = Resolve(env, NoNetwork());
  ASSERT_TRUE(creds.ok()) << creds.status().ToString();
  EXPECT_EQ(creds->access_key_id, "AKIAENV");
  EXPECT_EQ(creds->session_token, "envtoken");
}

TEST(CredentialsTest, HalfSetEnvironmentIsAnError) {
  TempDir dir;
  EnvVars env = IsolatedEnv(dir);
  env["AWS_ACCESS_KEY_ID"] = "AKIAENV";
  auto creds = Resolve(env, NoNetwork());
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.status().code(), StatusCode::kInvalidArgument);
}

TEST(CredentialsTest, StaticProfilesFromBothFiles) {
  TempDir dir;
  dir.Write("config",
            "# comment\n[default]\nregion = eu-west-1\n"
            "[profile cfg]\naws_access_key_id = AKIACFG\n"
            "aws_secret_access_key = cfgsecret\n"
            "s3 =\n  max_concurrent_requests = 2\n");
  dir.Write(
      "credentials",
      "[default]\naws_access_key_id = AKIADEFAULT\n"
      "aws_secret_access_key = defsecret\n"
      "[dev]\naws_access_key_id=AKIADEV\naws_secret_access_key=devsecret\n"
      "aws_session_token = devtoken\n");
  EnvVars env = IsolatedEnv(dir);
  auto def = Resolve(env, NoNetwork());
  ASSERT_TRUE(def.ok()) << def.status().ToString();
  EXPECT_EQ(def->access_key_id, "AKIADEFAULT");
  auto dev = Resolve(env, NoNetwork(), "dev");
  ASSERT_TRUE(dev.ok());
  EXPECT_EQ(dev->access_key_id, "AKIADEV");
  EXPECT_EQ(dev->session_token, "devtoken");
  env["AWS_PROFILE"] = "cfg";
  auto cfg = Resolve(env, NoNetwork());
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->access_key_id, "AKIACFG");

  auto shared = LoadSharedConfig(env);
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(ResolveRegion(env, *shared, "default", ""), "eu-west-1");
  env["AWS_DEFAULT_REGION"] = "us-west-1";
  EXPECT_EQ(ResolveRegion(env, *shared, "default", ""), "us-west-1");
  env["AWS_REGION"] = "us-west-2";
  EXPECT_EQ(ResolveRegion(env, *shared, "default", ""), "us-west-2");
  EXPECT_EQ(ResolveRegion(env, *shared, "default", "ap-south-1"), "ap-south-1");
}

TEST(CredentialsTest, MissingProfileIsAnError) {
  TempDir dir;
  auto creds = Resolve(IsolatedEnv(dir), NoNetwork(), "nope");
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(creds.status().message().find("\"nope\""), std::string::npos);
}

TEST(CredentialsTest, SourceProfileLoopIsAnError) {
  TempDir dir;
  dir.Write(
      "config",
      "[profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n"
      "[profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n");
  auto creds = Resolve(IsolatedEnv(dir), NoNetwork(), "a");
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.status().message().find("loop"), std::string::npos);
}

TEST(CredentialsTest, CredentialProcess) {
  TempDir dir;
  std::string script = dir.Write(
      "creds.sh",
      "#!/bin/sh\necho '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROC\", "
      "\"SecretAccessKey\": \"procsecret\", \"SessionToken\": \"proctoken\", "
      "\"Expiration\": \"2999-01-01T00:00:00Z\"}'\n",
      true);
  std::string failing =
      dir.Write("fail.sh", "#!/bin/sh\necho 'SECRETOUTPUT'\nexit 3\n", true);
  std::string bad_version =
      dir.Write("v2.sh",
                "#!/bin/sh\necho '{\"Version\": 2, \"AccessKeyId\": \"A\", "
                "\"SecretAccessKey\": \"SECRETVALUE\"}'\n",
                true);
  dir.Write("config", "[profile proc]\ncredential_process = " + script +
                          "\n[profile fail]\ncredential_process = " + failing +
                          " --flag\n[profile v2]\ncredential_process = " +
                          bad_version + "\n");
  EnvVars env = IsolatedEnv(dir);
  auto creds = Resolve(env, NoNetwork(), "proc");
  ASSERT_TRUE(creds.ok()) << creds.status().ToString();
  EXPECT_EQ(creds->access_key_id, "AKIAPROC");
  EXPECT_EQ(creds->secret_access_key, "procsecret");
  EXPECT_EQ(creds->session_token, "proctoken");
  EXPECT_EQ(*creds->expiration, *ParseIso8601("2999-01-01T00:00:00Z"));

  auto failed = Resolve(env, NoNetwork(), "fail");
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(failed.status().message().find("exit status 3"), std::string::npos);
  EXPECT_EQ(failed.status().message().find("SECRETOUTPUT"), std::string::npos);

  auto v2 = Resolve(env, NoNetwork(), "v2");
  ASSERT_FALSE(v2.ok());
  EXPECT_NE(v2.status().message().find("Version"), std::string::npos);
  EXPECT_EQ(v2.status().message().find("SECRETVALUE"), std::string::npos);
}

TEST(CredentialsTest,
     RefreshingProviderRefreshesAheadOfExpiryAndKeepsValidOnes) {
  int calls = 0;
  bool fail = false;
  RefreshingCredentialsProvider provider(
      "test", [&](Millis now) -> Result<AwsCredentials> {
        ++calls;
        if (fail) return Unavailable("sts down");
        AwsCredentials c;
        c.access_key_id = "K" + std::to_string(calls);
        c.secret_access_key = "s";
        c.expiration = now + 60 * 60 * 1000;
        return c;
      });
  EXPECT_EQ(provider.GetCredentials(0)->access_key_id, "K1");
  EXPECT_EQ(provider.GetCredentials(50 * 60 * 1000)->access_key_id, "K1");
  // Within 5 minutes of expiry: refresh.
  EXPECT_EQ(provider.GetCredentials(56 * 60 * 1000)->access_key_id, "K2");
  fail = true;
  const Millis exp2 = 56 * 60 * 1000 + 60 * 60 * 1000;
  // Refresh fails but the cached credentials are still valid.
  EXPECT_EQ(provider.GetCredentials(exp2 - 60 * 1000)->access_key_id, "K2");
  // Expired and the refresh fails: the error.
  auto expired = provider.GetCredentials(exp2 + 1);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().code(), StatusCode::kUnavailable);
}

TEST(CredentialsTest, ContainerCredentialsWithTokenFile) {
  TempDir dir;
  std::string token_file = dir.Write("token", "pod-identity-token-1\n");
  std::vector<std::string> seen_auth;
  std::mutex mu;
  TestHttpServer server([&](const TestHttpRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    seen_auth.push_back(
        r.headers.count("authorization") ? r.headers.at("authorization") : "");
    return TestHttpReply::Json(
        200, R"({"AccessKeyId":"AKIAPOD","SecretAccessKey":"podsecret",)"
             R"("Token":"podtoken","Expiration":"2999-01-01T00:00:00Z"})");
  });
  EnvVars env = IsolatedEnv(dir);
  env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = server.url() + "/v1/credentials";
  env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = token_file;
  auto creds = Resolve(env, std::make_shared<net::CurlHttpTransport>());
  ASSERT_TRUE(creds.ok()) << creds.status().ToString();
  EXPECT_EQ(creds->access_key_id, "AKIAPOD");
  EXPECT_EQ(creds->session_token, "podtoken");
  ASSERT_EQ(seen_auth.size(), 1u);
  EXPECT_EQ(seen_auth[0], "pod-identity-token-1");
}

TEST(CredentialsTest, ImdsV2TokenThenRoleThenCredentials) {
  TempDir dir;
  std::vector<std::string> seen;
  std::mutex mu;
  TestHttpServer server([&](const TestHttpRequest& r) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(r.method + " " + r.target);
    if (r.method == "PUT" && r.target == "/latest/api/token") {
      EXPECT_EQ(r.headers.at("x-aws-ec2-metadata-token-ttl-seconds"), "21600");
      TestHttpReply reply;
      reply.body = "imds-session";
      return reply;
    }
    if (!r.headers.count("x-aws-ec2-metadata-token") ||
        r.headers.at("x-aws-ec2-metadata-token") != "imds-session") {
      TestHttpReply reply;
      reply.status = 401;
      return reply;
    }
    TestHttpReply reply;
    if (r.target == "/latest/meta-data/iam/security-credentials/") {
      reply.body = "node-role\n";
    } else if (r.target ==
               "/latest/meta-data/iam/security-credentials/node-role") {
      reply.body = R"({"Code":"Success","AccessKeyId":"AKIAIMDS",)"
                   R"("SecretAccessKey":"imdssecret","Token":"imdstoken",)"
                   R"("Expiration":"2999-01-01T00:00:00Z"})";
    } else {
      reply.status = 404;
    }
    return reply;
  });
  EnvVars env = IsolatedEnv(dir);
  env.erase("AWS_EC2_METADATA_DISABLED");
  env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = server.url() + "/";
  auto creds = Resolve(env, std::make_shared<net::CurlHttpTransport>());
  ASSERT_TRUE(creds.ok()) << creds.status().ToString();
  EXPECT_EQ(creds->access_key_id, "AKIAIMDS");
  EXPECT_EQ(creds->session_token, "imdstoken");
  EXPECT_EQ(seen.size(), 3u);
}

TEST(CredentialsTest, ImdsDisabledOrUnreachableFailsFastWithWhatWasTried) {
  TempDir dir;
  auto disabled = Resolve(IsolatedEnv(dir), NoNetwork());
  ASSERT_FALSE(disabled.ok());
  EXPECT_EQ(disabled.status().code(), StatusCode::kNotFound);
  EXPECT_NE(disabled.status().message().find("AWS_EC2_METADATA_DISABLED"),
            std::string::npos);

  // An endpoint that never answers: the 1 s timeout bounds the wait.
  TestHttpServer silent([](const TestHttpRequest&) {
    TestHttpReply r;
    r.delay_ms = 5000;
    return r;
  });
  EnvVars env = IsolatedEnv(dir);
  env.erase("AWS_EC2_METADATA_DISABLED");
  env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = silent.url();
  auto start = std::chrono::steady_clock::now();
  auto creds = Resolve(env, std::make_shared<net::CurlHttpTransport>());
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.status().code(), StatusCode::kNotFound);
  EXPECT_NE(creds.status().message().find("environment, web identity"),
            std::string::npos);
  EXPECT_LT(took, std::chrono::milliseconds(2500));
}

// Issue 8: credential_process output is outside input; "Version" is
// compared as a 64-bit number (get<int> wrapped 4294967297 to 1).
TEST(CredentialsTest, CredentialProcessOutputIsBounded) {
  const std::string keys = R"("AccessKeyId":"AKID","SecretAccessKey":"s")";
  EXPECT_TRUE(
      ParseCredentialProcessOutput("{\"Version\":1," + keys + "}", "p").ok());
  auto wrapped = ParseCredentialProcessOutput(
      "{\"Version\":4294967297," + keys + "}", "p");
  EXPECT_FALSE(wrapped.ok());
  auto deep = ParseCredentialProcessOutput(
      "{\"Version\":1," + keys + ",\"x\":" + std::string(100000, '[') +
          std::string(100000, ']') + "}",
      "p");
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nested deeper"), std::string::npos)
      << deep.status().message();
}

TEST(ConfigTest, EndpointResolutionOrder) {
  TempDir dir;
  dir.Write("config", "[default]\nendpoint_url = http://profile:1\n");
  EnvVars env = IsolatedEnv(dir);
  auto shared = LoadSharedConfig(env);
  ASSERT_TRUE(shared.ok());
  EXPECT_EQ(*ConfiguredEndpoint(env, *shared, "default", "sqs", ""),
            "http://profile:1");
  env["AWS_ENDPOINT_URL"] = "http://global:2";
  EXPECT_EQ(*ConfiguredEndpoint(env, *shared, "default", "sqs", ""),
            "http://global:2");
  env["AWS_ENDPOINT_URL_SQS"] = "http://sqs:3";
  EXPECT_EQ(*ConfiguredEndpoint(env, *shared, "default", "sqs", ""),
            "http://sqs:3");
  EXPECT_EQ(*ConfiguredEndpoint(env, *shared, "default", "sts", ""),
            "http://global:2");
  EXPECT_EQ(
      *ConfiguredEndpoint(env, *shared, "default", "sqs", "http://flag:4"),
      "http://flag:4");
  EXPECT_EQ(DefaultEndpoint("sqs", "eu-west-1"),
            "https://sqs.eu-west-1.amazonaws.com");
}

TEST(ConfigTest, MalformedFilesNameFileAndLine) {
  TempDir dir;
  dir.Write("config", "[default]\nregion = x\nthis line is bad\n");
  auto shared = LoadSharedConfig(IsolatedEnv(dir));
  ASSERT_FALSE(shared.ok());
  EXPECT_NE(shared.status().message().find("config:3"), std::string::npos);
}

}  // namespace
}  // namespace cruncher::aws
