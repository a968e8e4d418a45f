// The configuration loader against the real test cluster
// (tools/testcluster): every way of configuring credentials is loaded with
// our loader, and one authenticated HTTPS GET with libcurl proves the result
// works. (The shared transport comes later; this tiny helper only makes the
// requests.)
//
// Run through tools/testcluster/with-cluster.sh, which exports KUBECONFIG
// (the admin kubeconfig: token, CA embedded) and TESTCLUSTER_DIR (its pki/
// holds the CA key, used here to mint a client certificate).
#include <curl/curl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/clock.h"
#include "core/encoding.h"
#include "kube/kubeconfig.h"

namespace cruncher::kube {
namespace {

using ::testing::HasSubstr;

struct Response {
  long status = 0;
  std::string body;
};

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET `path` on the cluster of `config` with `creds`, TLS set up from the
// config as the transport will do it.
Response Get(const ClusterConfig& config, const Credentials& creds,
             const std::string& path) {
  CURL* curl = curl_easy_init();
  Response r;
  const std::string url = config.server + path;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
  curl_blob ca{}, cert{}, key{};
  if (!config.certificate_authority.data.empty()) {
    ca = {const_cast<char*>(config.certificate_authority.data.data()),
          config.certificate_authority.data.size(), CURL_BLOB_COPY};
    curl_easy_setopt(curl, CURLOPT_CAINFO_BLOB, &ca);
  } else if (!config.certificate_authority.file.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO,
                     config.certificate_authority.file.c_str());
  }
  if (config.insecure_skip_tls_verify) {
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  const std::string& cert_pem = !creds.client_certificate_pem.empty()
                                    ? creds.client_certificate_pem
                                    : config.client_certificate.data;
  const std::string& key_pem = !creds.client_key_pem.empty()
                                   ? creds.client_key_pem
                                   : config.client_key.data;
  if (!cert_pem.empty()) {
    cert = {const_cast<char*>(cert_pem.data()), cert_pem.size(),
            CURL_BLOB_COPY};
    key = {const_cast<char*>(key_pem.data()), key_pem.size(), CURL_BLOB_COPY};
    curl_easy_setopt(curl, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(curl, CURLOPT_SSLKEY_BLOB, &key);
  } else if (!config.client_certificate.file.empty()) {
    curl_easy_setopt(curl, CURLOPT_SSLCERT,
                     config.client_certificate.file.c_str());
    curl_easy_setopt(curl, CURLOPT_SSLKEY, config.client_key.file.c_str());
  }
  curl_slist* headers = nullptr;
  const std::string auth = "Authorization: Bearer " + creds.token;
  if (!creds.token.empty()) headers = curl_slist_append(headers, auth.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const CURLcode rc = curl_easy_perform(curl);
  EXPECT_EQ(rc, CURLE_OK) << url << ": " << curl_easy_strerror(rc);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return r;
}

class KubeConfigClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }

  void SetUp() override {
    const char* tc = std::getenv("TESTCLUSTER_DIR");
    const char* kc = std::getenv("KUBECONFIG");
    ASSERT_TRUE(tc != nullptr && kc != nullptr)
        << "run through tools/testcluster/with-cluster.sh";
    cluster_dir_ = tc;
    admin_kubeconfig_ = kc;
    work_ = cluster_dir_ + "/kube-config-test";
    std::filesystem::create_directories(work_);
    // The admin token and CA, as the cluster's own kubeconfig holds them.
    auto admin = LoadClusterConfig(Options());
    ASSERT_TRUE(admin.ok()) << admin.status().ToString();
    admin_ = *admin;
  }

  KubeConfigOptions Options() const {
    KubeConfigOptions options;
    options.env = ProcessEnvironment();
    return options;
  }

  std::string Write(const std::string& name, const std::string& text,
                    mode_t mode = 0600) {
    const std::string path = work_ + "/" + name;
    std::filesystem::create_directories(
        std::filesystem::path(path).parent_path());
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }

  // A kubeconfig with one context "test" on the cluster, with `user` (YAML
  // of the user mapping) and `cluster_extra` lines.
  std::string Kubeconfig(const std::string& name, const std::string& user,
                         const std::string& cluster_extra) {
    return Write(name,
                 "apiVersion: v1\nkind: Config\nclusters:\n"
                 "- name: tc\n  cluster:\n    server: " +
                     admin_.server + "\n" + cluster_extra +
                     "users:\n- name: u\n  user:\n" + user +
                     "contexts:\n- name: test\n  context: {cluster: "
                     "tc, user: u, namespace: default}\n"
                     "current-context: test\n");
  }

  // Loads `path` with --kubeconfig and proves its credentials work.
  void ExpectWorks(const std::string& path) {
    KubeConfigOptions options = Options();
    options.kubeconfig = path;
    auto config = LoadClusterConfig(options);
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    auto provider = NewCredentialProvider(
        *config, std::make_shared<SubprocessRunner>(), SystemClock::Get());
    ASSERT_TRUE(provider.ok()) << provider.status().ToString();
    auto creds = (*provider)->Get();
    ASSERT_TRUE(creds.ok()) << creds.status().ToString();
    ExpectAuthenticated(*config, *creds);
  }

  static void ExpectAuthenticated(const ClusterConfig& config,
                                  const Credentials& creds) {
    Response version = Get(config, creds, "/version");
    EXPECT_EQ(version.status, 200) << version.body;
    EXPECT_THAT(version.body, HasSubstr("\"gitVersion\""));
    Response ns =
        Get(config, creds, "/api/v1/namespaces/" + config.namespace_name);
    EXPECT_EQ(ns.status, 200) << ns.body;
    EXPECT_THAT(ns.body, HasSubstr("\"kind\":\"Namespace\""));
  }

  std::string CaPem() const { return admin_.certificate_authority.data; }

  std::string cluster_dir_, admin_kubeconfig_, work_;
  ClusterConfig admin_;
};

TEST_F(KubeConfigClusterTest, AdminTokenWithEmbeddedCa) {
  ASSERT_FALSE(admin_.token.empty());
  ASSERT_FALSE(admin_.certificate_authority.data.empty());
  auto provider = NewCredentialProvider(admin_, nullptr, SystemClock::Get());
  ASSERT_TRUE(provider.ok());
  ExpectAuthenticated(admin_, *(*provider)->Get());
  // Without the token the namespace is forbidden: the credentials matter.
  EXPECT_EQ(Get(admin_, Credentials{}, "/api/v1/namespaces/default").status,
            403);
}

TEST_F(KubeConfigClusterTest, TokenFileAndCaFile) {
  Write("tf/secret/token", admin_.token + "\n");
  Write("tf/ca.crt", CaPem());
  ExpectWorks(Kubeconfig("tf/config", "    tokenFile: secret/token\n",
                         "    certificate-authority: ca.crt\n"));
}

TEST_F(KubeConfigClusterTest, CaDataAndCaFileAlike) {
  Write("ca/ca.crt", CaPem());
  const std::string user = "    token: " + admin_.token + "\n";
  ExpectWorks(Kubeconfig(
      "ca/data", user,
      "    certificate-authority-data: " + Base64Encode(CaPem()) + "\n"));
  ExpectWorks(Kubeconfig(
      "ca/file", user, "    certificate-authority: " + work_ + "/ca/ca.crt\n"));
}

TEST_F(KubeConfigClusterTest, ClientCertificate) {
  // Signed by the cluster CA; the group system:masters grants access.
  const std::string pki = cluster_dir_ + "/pki";
  const std::string dir = work_ + "/cert";
  std::filesystem::create_directories(dir);
  const std::string cmd =
      "cd " + dir +
      " && openssl req -newkey rsa:2048 -nodes -keyout client.key -out "
      "client.csr -subj /CN=cert-admin/O=system:masters 2>/dev/null"
      " && openssl x509 -req -in client.csr -CA " +
      pki + "/ca.crt -CAkey " + pki +
      "/ca.key -CAcreateserial -CAserial client.srl -out client.crt -days 1 "
      "2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream cert_in(dir + "/client.crt"), key_in(dir + "/client.key");
  std::stringstream cert, key;
  cert << cert_in.rdbuf();
  key << key_in.rdbuf();
  const std::string ca =
      "    certificate-authority-data: " + Base64Encode(CaPem()) + "\n";
  ExpectWorks(Kubeconfig("cert/files",
                         "    client-certificate: client.crt\n"
                         "    client-key: client.key\n",
                         ca));
  ExpectWorks(
      Kubeconfig("cert/data",
                 "    client-certificate-data: " + Base64Encode(cert.str()) +
                     "\n    client-key-data: " + Base64Encode(key.str()) + "\n",
                 ca));
}

// An exec plugin that first prints a token the server rejects: the 401
// leads to Invalidate() and a second run, whose token works.
TEST_F(KubeConfigClusterTest, ExecPluginAndInvalidateOn401) {
  Write("exec/admin-token", admin_.token);
  Write(
      "exec/plugin.sh",
      "#!/bin/sh\n"
      "dir=$(dirname \"$0\")\n"
      "n=$(cat \"$dir/runs\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "
      "\"$dir/runs\"\n"
      "if [ \"$n\" = 1 ]; then token=not-a-valid-token; else "
      "token=$(cat \"$dir/admin-token\"); fi\n"
      "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":"
      "\"ExecCredential\",\"status\":{\"token\":\"%s\",\"expirationTimestamp\":"
      "\"%s\"}}\\n' \"$token\" \"$(date -u -d '+15 min' "
      "+%Y-%m-%dT%H:%M:%SZ)\"\n",
      0755);
  const std::string path = Kubeconfig(
      "exec/config",
      "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
      "      command: ./plugin.sh\n      interactiveMode: Never\n"
      "      provideClusterInfo: true\n",
      "    certificate-authority-data: " + Base64Encode(CaPem()) + "\n");
  KubeConfigOptions options = Options();
  options.kubeconfig = path;
  auto config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto provider = NewCredentialProvider(
      *config, std::make_shared<SubprocessRunner>(), SystemClock::Get());
  ASSERT_TRUE(provider.ok()) << provider.status().ToString();
  auto first = (*provider)->Get();
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE(first->expires_at.has_value());
  EXPECT_EQ(Get(*config, *first, "/api/v1/namespaces/default").status, 401);
  (*provider)->Invalidate();
  auto second = (*provider)->Get();
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  ExpectAuthenticated(*config, *second);
  // Cached now: a third Get does not run the plugin.
  ASSERT_TRUE((*provider)->Get().ok());
  std::ifstream runs(work_ + "/exec/runs");
  int n = 0;
  runs >> n;
  EXPECT_EQ(n, 2);
}

// In-cluster configuration with a ServiceAccount token minted through the
// TokenRequest API: an authenticated identity may read API discovery, an
// anonymous one may not.
TEST_F(KubeConfigClusterTest, InClusterServiceAccountToken) {
  const std::string sa = work_ + "/sa";
  std::filesystem::create_directories(sa);
  const std::string cmd = "kubectl --kubeconfig=" + admin_kubeconfig_ +
                          " -n default create token default --duration=10m > " +
                          sa + "/token";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  Write("sa/ca.crt", CaPem());
  const std::string hostport =
      admin_.server.substr(std::string("https://").size());
  const auto colon = hostport.rfind(':');
  KubeConfigOptions options;
  options.env = {{"KUBERNETES_SERVICE_HOST", hostport.substr(0, colon)},
                 {"KUBERNETES_SERVICE_PORT", hostport.substr(colon + 1)},
                 {"HOME", work_}};  // no ~/.kube/config there
  options.in_cluster = {sa + "/token", sa + "/ca.crt", sa + "/namespace"};
  auto config = LoadClusterConfig(options);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->source, "in-cluster configuration");
  auto provider = NewCredentialProvider(*config, nullptr, SystemClock::Get());
  ASSERT_TRUE(provider.ok());
  auto creds = (*provider)->Get();
  ASSERT_TRUE(creds.ok()) << creds.status().ToString();
  Response api = Get(*config, *creds, "/api");
  EXPECT_EQ(api.status, 200) << api.body;
  EXPECT_THAT(api.body, HasSubstr("\"kind\":\"APIVersions\""));
  EXPECT_EQ(Get(*config, Credentials{}, "/api").status, 403);
}

}  // namespace
}  // namespace cruncher::kube
