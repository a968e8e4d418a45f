#include "kube/kubeconfig.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/encoding.h"
#include "fakes/fake_clock.h"
#include "fakes/test_util.h"

namespace cruncher::kube {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class KubeconfigTest : public ::testing::Test {
 protected:
  // Writes `text` to `name` under the temp dir and returns its path.
  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = dir_.path() + "/" + name;
    std::filesystem::create_directories(
        std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
    return path;
  }
  Result<ClusterConfig> Load(const std::string& path,
                             const std::string& context = "",
                             const std::string& ns = "") {
    return LoadKubeConfigFiles({path}, true, context, ns);
  }
  std::string Error(const Result<ClusterConfig>& r) {
    EXPECT_FALSE(r.ok());
    return r.ok() ? "" : r.status().message();
  }
  testing::TempDir dir_;
};

constexpr const char* kSimple = R"(apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443/
    certificate-authority: certs/ca.crt
users:
- name: admin
  user:
    token: abc
contexts:
- name: prod
  context: {cluster: prod, user: admin, namespace: work}
current-context: prod
)";

TEST_F(KubeconfigTest, ResolvesTheCurrentContext) {
  auto r = Load(Write("a/config", kSimple));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server, "https://prod.example:6443");
  EXPECT_EQ(r->token, "abc");
  EXPECT_EQ(r->namespace_name, "work");
  // Relative paths resolve against the file's directory.
  EXPECT_EQ(r->certificate_authority.file, dir_.path() + "/a/certs/ca.crt");
  EXPECT_TRUE(r->certificate_authority.data.empty());
  EXPECT_THAT(r->source, HasSubstr("context \"prod\""));
}

TEST_F(KubeconfigTest, ContextAndNamespaceOverrides) {
  const std::string path = Write("config", R"(
clusters:
- {name: a, cluster: {server: https://a}}
- {name: b, cluster: {server: https://b}}
users:
- {name: u, user: {token: t}}
contexts:
- {name: a, context: {cluster: a, user: u, namespace: ns-a}}
- {name: b, context: {cluster: b, user: u}}
current-context: a
)");
  auto r = Load(path, "b");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server, "https://b");
  EXPECT_EQ(r->namespace_name, "default");
  r = Load(path, "", "other");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->server, "https://a");
  EXPECT_EQ(r->namespace_name, "other");
  EXPECT_THAT(Error(Load(path, "", "Bad_NS")), HasSubstr("--namespace"));
}

TEST_F(KubeconfigTest, MergesFilesFirstDefinitionWins) {
  // file1 sets current-context and defines cluster "shared"; file2 defines
  // "shared" differently (ignored), its own context and user, and a
  // current-context that loses to file1's.
  const std::string f1 = Write("one/config", R"(
clusters:
- {name: shared, cluster: {server: https://one, certificate-authority: ca1.crt}}
contexts:
- {name: main, context: {cluster: shared, user: u2}}
current-context: main
)");
  const std::string f2 = Write("two/config", R"(
clusters:
- {name: shared, cluster: {server: https://two}}
- {name: only2, cluster: {server: https://only2}}
users:
- {name: u2, user: {tokenFile: tok}}
contexts:
- {name: main, context: {cluster: only2, user: u2}}
- {name: second, context: {cluster: only2, user: u2}}
current-context: second
)");
  const std::string missing = dir_.path() + "/missing/config";
  auto r = LoadKubeConfigFiles({missing, f1, f2, f1}, false, "", "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server, "https://one");
  EXPECT_EQ(r->certificate_authority.file, dir_.path() + "/one/ca1.crt");
  // The user came from file 2: its path resolves against file 2's dir.
  EXPECT_EQ(r->token_file, dir_.path() + "/two/tok");
  r = LoadKubeConfigFiles({f2, f1}, false, "", "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->server, "https://only2");  // file 2 first: its context wins
  r = LoadKubeConfigFiles({f1, f2}, false, "second", "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->server, "https://only2");
}

TEST_F(KubeconfigTest, KubeconfigEnvListHomeAndFlag) {
  const std::string f1 = Write("x/config", kSimple);
  const std::string f2 = Write("y/config", R"(
clusters: [{name: c, cluster: {server: "https://y"}}]
contexts: [{name: y, context: {cluster: c}}]
current-context: y
)");
  KubeConfigOptions options;
  options.env = {{"KUBECONFIG", ":" + f2 + "::" + f1},
                 {"HOME", "/nonexistent"}};
  auto r = LoadClusterConfig(options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server, "https://y");
  EXPECT_TRUE(r->token.empty());  // a context without a user: anonymous
  options.kubeconfig = f1;        // the flag wins over KUBECONFIG
  r = LoadClusterConfig(options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->server, "https://prod.example:6443");
  // HOME's ~/.kube/config when KUBECONFIG is not set.
  Write("home/.kube/config", kSimple);
  options = {};
  options.env = {{"HOME", dir_.path() + "/home"}};
  r = LoadClusterConfig(options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->token, "abc");
  // An explicit file must exist.
  options.kubeconfig = dir_.path() + "/nope";
  EXPECT_THAT(Error(LoadClusterConfig(options)),
              HasSubstr("kubeconfig " + dir_.path() + "/nope"));
}

TEST_F(KubeconfigTest, NothingConfigured) {
  KubeConfigOptions options;
  options.env = {{"HOME", dir_.path()}};
  auto r = LoadClusterConfig(options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("no Kubernetes configuration"));
  EXPECT_THAT(r.status().message(), HasSubstr("KUBERNETES_SERVICE_HOST"));
}

TEST_F(KubeconfigTest, CertificateAuthorityDataWinsOverFile) {
  const std::string pem = "-----BEGIN CERTIFICATE-----\nMIIB\n";
  auto r = Load(Write("config", R"(
clusters:
- name: c
  cluster:
    server: https://c
    certificate-authority: ca.crt
    certificate-authority-data: )" + Base64Encode(pem) +
                                    R"(
    tls-server-name: api.internal
contexts: [{name: c, context: {cluster: c}}]
current-context: c
)"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->certificate_authority.data, pem);
  EXPECT_TRUE(r->certificate_authority.file.empty());
  EXPECT_EQ(r->tls_server_name, "api.internal");
}

TEST_F(KubeconfigTest, ClientCertificateFilesAndData) {
  auto r = Load(Write("d/config", R"(
clusters: [{name: c, cluster: {server: https://c, insecure-skip-tls-verify: true}}]
users:
- name: u
  user:
    client-certificate: /abs/cert.pem
    client-key: key.pem
- name: v
  user:
    client-certificate-data: )" + Base64Encode("CERT") +
                                      R"(
    client-key-data: )" + Base64Encode("KEY") +
                                      R"(
contexts:
- {name: u, context: {cluster: c, user: u}}
- {name: v, context: {cluster: c, user: v}}
current-context: u
)"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->insecure_skip_tls_verify);
  EXPECT_EQ(r->client_certificate.file, "/abs/cert.pem");
  EXPECT_EQ(r->client_key.file, dir_.path() + "/d/key.pem");
  r = Load(dir_.path() + "/d/config", "v");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->client_certificate.data, "CERT");
  EXPECT_EQ(r->client_key.data, "KEY");
}

TEST_F(KubeconfigTest, ExecStanza) {
  auto r = Load(Write("e/config", R"(
clusters: [{name: c, cluster: {server: https://c}}]
users:
- name: eks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: aws
      args: [eks, get-token, --cluster-name, demo]
      env: [{name: AWS_PROFILE, value: dev}]
      provideClusterInfo: true
- name: local
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/plugin
      interactiveMode: Never
contexts:
- {name: eks, context: {cluster: c, user: eks}}
- {name: local, context: {cluster: c, user: local}}
current-context: eks
)"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_TRUE(r->exec.has_value());
  EXPECT_EQ(r->exec->command, "aws");  // looked up in PATH
  EXPECT_EQ(r->exec->args.size(), 4u);
  ASSERT_EQ(r->exec->env.size(), 1u);
  EXPECT_EQ(r->exec->env[0].second, "dev");
  EXPECT_TRUE(r->exec->provide_cluster_info);
  EXPECT_EQ(r->exec->interactive_mode, InteractiveMode::kIfAvailable);
  EXPECT_THAT(r->exec->where, HasSubstr("users[eks].exec"));
  r = Load(dir_.path() + "/e/config", "local");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exec->command, dir_.path() + "/e/bin/plugin");
  EXPECT_EQ(r->exec->interactive_mode, InteractiveMode::kNever);
}

// One-line errors naming the file and the field, for every bad input.
TEST_F(KubeconfigTest, BadInputsNameFileAndField) {
  struct Case {
    std::string yaml;
    std::string context;
    std::string expected;
  };
  const std::string base = R"(
clusters: [{name: c, cluster: {server: https://c}}]
current-context: ctx
)";
  const std::vector<Case> cases = {
      {"clusters: [unclosed", "", "not valid YAML"},
      {"\t- : :\n  - {", "", "not valid YAML"},
      {"- just\n- a list\n", "", "not a kubeconfig (the document is a list"},
      {"plain text that is a scalar", "", "document is a scalar"},
      {"kind: Pod\n", "", "kind: \"Pod\" is not \"Config\""},
      {"apiVersion: v2\n", "", "apiVersion: \"v2\" is not \"v1\""},
      {"clusters: {a: b}\n", "", "clusters: expected a list, found a mapping"},
      {"clusters: [42]\n", "",
       "clusters[0]: expected a mapping, found a scalar"},
      {"clusters: [{cluster: {}}]\n", "", "clusters[0].name: is not set"},
      {"clusters: [{name: [x]}]\n", "", "clusters[0].name: expected a string"},
      {"clusters: [{name: a, cluster: [1]}]\n", "",
       "clusters[a].cluster: expected a mapping, found a list"},
      {"clusters: [{name: a, cluster: {server: {x: 1}}}]\n", "",
       "clusters[a].cluster.server: expected a string, found a mapping"},
      {"clusters: [{name: a, cluster: {insecure-skip-tls-verify: maybe}}]\n",
       "",
       "clusters[a].cluster.insecure-skip-tls-verify: expected true or false"},
      {"clusters: [{name: a, cluster: {certificate-authority-data: '!!'}}]\n",
       "", "clusters[a].cluster.certificate-authority-data: base64"},
      {"clusters: [{name: a}, {name: a}]\n", "",
       "clusters: duplicate name \"a\""},
      {"users: [{name: u, user: {exec: {args: x}}}]\n", "",
       "users[u].user.exec.args: expected a list of strings"},
      {"users: [{name: u, user: {exec: {env: [{value: v}]}}}]\n", "",
       "users[u].user.exec.env[0].name: must be a non-empty name"},
      {"current-context: [a]\n", "", "current-context: expected a string"},
      {base, "", "context \"ctx\" not found"},
      {base + "contexts: [{name: x, context: {cluster: c}}]\n", "",
       "context \"ctx\" not found"},
      {"contexts: [{name: x, context: {cluster: c}}]\n", "",
       "current-context is not set"},
      {"contexts: [{name: x, context: {user: u}}]\n", "x",
       "contexts[x].cluster: is not set"},
      {"contexts: [{name: x, context: {cluster: nope}}]\n", "x",
       "contexts[x]: cluster \"nope\" not found"},
      {base + "contexts: [{name: x, context: {cluster: c, user: ghost}}]\n",
       "x", "contexts[x]: user \"ghost\" not found"},
      {base + "contexts: [{name: x, context: {cluster: c, namespace: A_B}}]\n",
       "x", "contexts[x].namespace: namespace \"A_B\" is not a valid name"},
      {"clusters: [{name: c, cluster: {}}]\ncontexts: [{name: x, context: "
       "{cluster: c}}]\n",
       "x", "clusters[c].server: is not set"},
      {"clusters: [{name: c, cluster: {server: 'ftp://h'}}]\ncontexts: [{name: "
       "x, context: {cluster: c}}]\n",
       "x", "clusters[c].server: \"ftp://h\" is not an https://"},
      {"clusters: [{name: c, cluster: {server: \"http://[::1\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "the IPv6 address has no ']'"},
      {"clusters: [{name: c, cluster: {server: "
       "\"https://[::1]x\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "unexpected text after the IPv6 address"},
      {"clusters: [{name: c, cluster: {server: "
       "\"https://[zz]:6443\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "is not an IPv6 address"},
      {"clusters: [{name: c, cluster: {server: \"https://::1\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "an IPv6 address goes in [brackets]"},
      {"clusters: [{name: c, cluster: {server: \"https://h:0\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "the port is not a number from 1 to 65535"},
      {"clusters: [{name: c, cluster: {server: "
       "\"https://h:65536\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "the port is not a number from 1 to 65535"},
      {"clusters: [{name: c, cluster: {server: \"https://h:\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "the port is not a number from 1 to 65535"},
      {"clusters: [{name: c, cluster: {server: \"https://h:x\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "the port is not a number"},
      {"clusters: [{name: c, cluster: {server: \"https://:6443\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "no host"},
      {"clusters: [{name: c, cluster: {server: \"https:///path\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "no host"},
      {"clusters: [{name: c, cluster: {server: \"https://u:p@h\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "user information"},
      {"clusters: [{name: c, cluster: {server: \"https://h?x=1\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "'?' and '#' are not allowed"},
      {"clusters: [{name: c, cluster: {server: \"https://h /x\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "spaces"},
      {"clusters: [{name: c, cluster: {server: \"https://h\\r\\nX: "
       "1\"}}]\ncontexts: "
       "[{name: x, context: {cluster: c}}]\n",
       "x", "control characters"},
      {"clusters: [{name: c, cluster: {server: 'https://h', proxy-url: "
       "'http://p:3128'}}]\ncontexts: [{name: x, context: {cluster: c}}]\n",
       "x", "clusters[c].proxy-url: is not supported"},
      {"clusters: [{name: c, cluster: {server: 'https://h', "
       "insecure-skip-tls-verify: true, certificate-authority: ca}}]\n"
       "contexts: [{name: x, context: {cluster: c}}]\n",
       "x", "insecure-skip-tls-verify cannot be combined"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string path = Write("bad" + std::to_string(i), cases[i].yaml);
    auto r = Load(path, cases[i].context);
    ASSERT_FALSE(r.ok()) << "case " << i << ": " << cases[i].yaml;
    EXPECT_THAT(r.status().message(), HasSubstr("kubeconfig " + path))
        << "case " << i;
    EXPECT_THAT(r.status().message(), HasSubstr(cases[i].expected))
        << "case " << i;
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos)
        << "case " << i << ": " << r.status().message();
  }
}

TEST_F(KubeconfigTest, ServerUrlsThatWork) {
  for (const auto& [server, expected] :
       std::vector<std::pair<std::string, std::string>>{
           {"https://[::1]:6443/", "https://[::1]:6443"},
           {"https://[fd00::1]", "https://[fd00::1]"},
           {"http://h:8080/base/", "http://h:8080/base"},
           {"https://10.0.0.1:443", "https://10.0.0.1:443"},
           {"https://api.example_x.com", "https://api.example_x.com"}}) {
    const std::string path =
        Write("server", "clusters: [{name: c, cluster: {server: \"" + server +
                            "\"}}]\ncontexts: [{name: x, context: {cluster: "
                            "c}}]\ncurrent-context: x\n");
    auto r = Load(path);
    ASSERT_TRUE(r.ok()) << server << ": " << r.status().ToString();
    EXPECT_EQ(r->server, expected);
  }
}

TEST_F(KubeconfigTest, BadUsers) {
  const std::string head = R"(
clusters: [{name: c, cluster: {server: https://c}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
users:
- name: u
  user:
)";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"    username: a\n    password: b\n",
       "users[u].username: is not supported"},
      {"    auth-provider: {name: gcp}\n",
       "users[u].auth-provider: is not supported"},
      {"    as: someone\n", "users[u].as: is not supported"},
      {"    client-certificate: c.pem\n",
       "client-certificate is set without client-key"},
      {"    client-key-data: " + Base64Encode("k") + "\n",
       "client-key is set without client-certificate"},
      {"    token: t\n    exec: {apiVersion: client.authentication.k8s.io/v1, "
       "command: x, interactiveMode: Never}\n",
       "both a token and an exec plugin"},
      // A CR or LF would end the Authorization header and start another.
      {"    token: \"t\\r\\nX-Tok: 2\"\n",
       "users[u].user.token: the token contains a control character (byte "
       "0x0d at offset 1)"},
      {"    token: \"t\\0\"\n",
       "token contains a control character (byte 0x00"},
      {"    token: \"t\\x7f\"\n",
       "token contains a control character (byte 0x7f"},
      {"    exec: {command: x}\n", "users[u].exec.apiVersion: is not set"},
      {"    exec: {apiVersion: x, command: y}\n",
       "users[u].exec: apiVersion \"x\" is not supported"},
      {"    exec: {apiVersion: client.authentication.k8s.io/v1alpha1, command: "
       "y}\n",
       "apiVersion \"client.authentication.k8s.io/v1alpha1\" is not supported"},
      {"    exec: {apiVersion: client.authentication.k8s.io/v1beta1}\n",
       "users[u].exec.command: is not set"},
      {"    exec: {apiVersion: client.authentication.k8s.io/v1, command: y}\n",
       "users[u].exec.interactiveMode: must be set"},
      {"    exec: {apiVersion: client.authentication.k8s.io/v1, command: y, "
       "interactiveMode: Always}\n",
       "users[u].exec.interactiveMode: Always needs a terminal"},
      {"    exec: {apiVersion: client.authentication.k8s.io/v1, command: y, "
       "interactiveMode: Sometimes}\n",
       "\"Sometimes\" is not one of Never, IfAvailable, Always"},
  };
  for (const auto& [user, expected] : cases) {
    const std::string path = Write("users", head + user);
    auto r = Load(path);
    ASSERT_FALSE(r.ok()) << user;
    EXPECT_THAT(r.status().message(), HasSubstr("kubeconfig " + path)) << user;
    EXPECT_THAT(r.status().message(), HasSubstr(expected)) << user;
  }
}

// Odd YAML shapes are errors or tolerated, never a crash.
TEST_F(KubeconfigTest, SurvivesAnyYamlShape) {
  const std::vector<std::string> docs = {
      "",
      "~\n",
      "null\n",
      "{}\n",
      "clusters:\n",
      "clusters: ~\nusers: []\ncontexts: {}\n",
      "clusters: [~]\n",
      "clusters: [{name: ~}]\n",
      "clusters: [{name: 1, cluster: ~}]\n",
      "users: [{name: u, user: {exec: ~}}]\n",
      "users: [{name: u, user: {exec: [1, 2]}}]\n",
      "users: [{name: u, user: {exec: {env: {a: b}}}}]\n",
      "users: [{name: u, user: {exec: {env: [1]}}}]\n",
      "? [complex, key]\n: value\nclusters: []\n",
      "anchors: &a [*a]\n",
      "x: &a {y: *a}\nclusters: *a\n",
      "--- a\n--- b\n",
      std::string(200000, '['),
      std::string(5000, '{') + std::string(5000, '}'),
      std::string("\0\1\2\3", 4),
      "\xff\xfe\x00k\x00i\x00n\x00d",
      "clusters: [{name: c, cluster: {server: 12345}}]\ncontexts: [{name: x, "
      "context: {cluster: c, namespace: 007}}]\ncurrent-context: x\n",
  };
  for (std::size_t i = 0; i < docs.size(); ++i) {
    const std::string path = Write("shape" + std::to_string(i), docs[i]);
    auto r = Load(path, "x");
    ASSERT_FALSE(r.ok()) << "case " << i;  // none resolves to a usable config
    EXPECT_EQ(r.status().message().find('\n'), std::string::npos)
        << r.status().message();
  }
}

TEST_F(KubeconfigTest, RefusesHugeFiles) {
  const std::string path =
      Write("big", "# " + std::string(kMaxKubeconfigBytes, 'x'));
  auto r = Load(path);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("larger than"));
  EXPECT_THAT(r.status().message(), HasSubstr(path));
}

TEST_F(KubeconfigTest, CredentialProviderKinds) {
  testing::FakeClock clock;
  ClusterConfig config;
  config.token = "static";
  auto provider = NewCredentialProvider(config, nullptr, clock);
  ASSERT_TRUE(provider.ok());
  auto creds = (*provider)->Get();
  ASSERT_TRUE(creds.ok());
  EXPECT_EQ(creds->token, "static");

  // A token file wins over the token; the token stands in while the file
  // cannot be read.
  config.token_file = dir_.path() + "/token";
  config.token_file_where = "kubeconfig x: users[u].tokenFile";
  provider = NewCredentialProvider(config, nullptr, clock);
  ASSERT_TRUE(provider.ok());
  EXPECT_EQ((*provider)->Get()->token, "static");
  Write("token", "from-file\n");
  clock.Advance(60'000);
  EXPECT_EQ((*provider)->Get()->token, "from-file");

  config.token.clear();
  config.token_file = dir_.path() + "/absent";
  provider = NewCredentialProvider(config, nullptr, clock);
  ASSERT_TRUE(provider.ok());
  auto missing = (*provider)->Get();
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(),
              HasSubstr("kubeconfig x: users[u].tokenFile: " + dir_.path() +
                        "/absent"));
}

TEST_F(KubeconfigTest, ATokenFileWithControlCharactersIsRefused) {
  testing::FakeClock clock;
  ClusterConfig config;
  config.token_file = Write("token", "a\r\nX-Evil: 1\r\n");
  config.token_file_where = "kubeconfig x: users[u].tokenFile";
  auto provider = NewCredentialProvider(config, nullptr, clock);
  ASSERT_TRUE(provider.ok());
  auto creds = (*provider)->Get();
  ASSERT_FALSE(creds.ok());
  EXPECT_THAT(
      creds.status().message(),
      HasSubstr("kubeconfig x: users[u].tokenFile: " + config.token_file +
                ": the token contains a control character (byte 0x0d "
                "at offset 1)"));
  EXPECT_THAT(creds.status().message(), Not(HasSubstr("X-Evil")));
  // One trailing newline is trimmed, as before.
  Write("token", "good\n");
  (*provider)->Invalidate();
  ASSERT_TRUE((*provider)->Get().ok());
  EXPECT_EQ((*provider)->Get()->token, "good");
}

TEST_F(KubeconfigTest, InClusterConfig) {
  const std::string sa = dir_.path() + "/sa";
  InClusterPaths paths{sa + "/token", sa + "/ca.crt", sa + "/namespace"};
  EnvVars env = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                 {"KUBERNETES_SERVICE_PORT", "443"}};
  auto r = LoadInClusterConfig(env, paths, "");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("in-cluster configuration: token"));
  Write("sa/token", "tok\nX-Evil: 1\n");
  r = LoadInClusterConfig(env, paths, "");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("in-cluster configuration: token: " + sa +
                        "/token: the token contains a control character"));
  Write("sa/token", "tok-1\n");
  r = LoadInClusterConfig(env, paths, "");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("CA certificate"));
  Write("sa/ca.crt", "PEM");
  r = LoadInClusterConfig(env, paths, "");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->server, "https://10.96.0.1:443");
  EXPECT_EQ(r->token, "tok-1");
  EXPECT_EQ(r->token_file, sa + "/token");
  EXPECT_EQ(r->certificate_authority.file, sa + "/ca.crt");
  EXPECT_EQ(r->namespace_name, "default");
  Write("sa/namespace", "jobs\n");
  EXPECT_EQ(LoadInClusterConfig(env, paths, "")->namespace_name, "jobs");
  env["POD_NAMESPACE"] = "from-env";
  EXPECT_EQ(LoadInClusterConfig(env, paths, "")->namespace_name, "from-env");
  EXPECT_EQ(LoadInClusterConfig(env, paths, "flag")->namespace_name, "flag");

  env["KUBERNETES_SERVICE_HOST"] = "fd00::1";
  EXPECT_EQ(LoadInClusterConfig(env, paths, "")->server,
            "https://[fd00::1]:443");
  env["KUBERNETES_SERVICE_PORT"] = "https";
  EXPECT_THAT(LoadInClusterConfig(env, paths, "").status().message(),
              HasSubstr("KUBERNETES_SERVICE_PORT \"https\" is not a port"));
  env.erase("KUBERNETES_SERVICE_PORT");
  EXPECT_EQ(LoadInClusterConfig(env, paths, "").status().code(),
            StatusCode::kNotFound);

  // LoadClusterConfig falls back to it when there is no kubeconfig.
  KubeConfigOptions options;
  options.env = {{"HOME", dir_.path()},
                 {"KUBERNETES_SERVICE_HOST", "10.0.0.1"},
                 {"KUBERNETES_SERVICE_PORT", "6443"}};
  options.in_cluster = paths;
  auto fallback = LoadClusterConfig(options);
  ASSERT_TRUE(fallback.ok()) << fallback.status().ToString();
  EXPECT_EQ(fallback->source, "in-cluster configuration");
}

// The ServiceAccount token rotates: the provider picks up the new file
// within a minute and keeps the old token while the file is being replaced.
TEST_F(KubeconfigTest, InClusterTokenRotation) {
  const std::string sa = dir_.path() + "/sa";
  Write("sa/token", "tok-1");
  Write("sa/ca.crt", "PEM");
  InClusterPaths paths{sa + "/token", sa + "/ca.crt", sa + "/namespace"};
  auto config = LoadInClusterConfig(
      {{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "1"}},
      paths, "");
  ASSERT_TRUE(config.ok());
  testing::FakeClock clock;
  auto provider = NewCredentialProvider(*config, nullptr, clock);
  ASSERT_TRUE(provider.ok());
  EXPECT_EQ((*provider)->Get()->token, "tok-1");
  Write("sa/token", "tok-2");
  clock.Advance(59'000);
  EXPECT_EQ((*provider)->Get()->token, "tok-1");  // cached for a minute
  clock.Advance(1'000);
  EXPECT_EQ((*provider)->Get()->token, "tok-2");
  // The kubelet swaps the file: briefly missing, then a new token.
  std::filesystem::remove(sa + "/token");
  clock.Advance(60'000);
  EXPECT_EQ((*provider)->Get()->token, "tok-2");
  Write("sa/token", "tok-3");
  EXPECT_EQ((*provider)->Get()->token, "tok-3");  // retried at once
  // Invalidate (a 401) re-reads before the minute is up.
  Write("sa/token", "tok-4");
  (*provider)->Invalidate();
  EXPECT_EQ((*provider)->Get()->token, "tok-4");
}

}  // namespace
}  // namespace cruncher::kube
