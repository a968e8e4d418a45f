// Where the Kubernetes API is and how to authenticate to it, resolved as
// kubectl resolves it:
//
//   1. --kubeconfig FILE (the file must exist), else
//   2. the files of KUBECONFIG (':'-separated; missing files are skipped;
//      duplicates and empty entries ignored), merged with kubectl's rules:
//      for clusters, users and contexts the first file to define a name wins
//      (the whole entry: entries are not merged field by field), and the
//      first file to set current-context wins, else
//   3. ~/.kube/config if it exists, else
//   4. the in-cluster configuration (LoadInClusterConfig) when the kubeconfig
//      is empty and KUBERNETES_SERVICE_HOST/PORT are set.
//
// The context is --context, else current-context; the namespace is
// --namespace, else the context's, else "default". Relative paths in a file
// (certificate-authority, client-certificate, client-key, tokenFile, and an
// exec command containing '/') are resolved against that file's directory.
// `*-data` fields are base64; data wins over the file of the same thing, a
// token file over a token (the token is the fallback while the file cannot be
// read), as in client-go.
//
// Refused with an error that names the file and the field: input that is
// not YAML or not shaped like a kubeconfig (any YAML shape is handled, never
// a crash), files over kMaxKubeconfigBytes, a missing context, cluster or
// user, duplicate names in one file, and what Cruncher does not support:
// proxy-url, basic auth, auth-provider, impersonation, exec plugins of other
// API versions or that need a terminal (interactiveMode Always).
//
// Thread-safety: pure functions over the file system and the given
// environment snapshot.
#ifndef CRUNCHER_KUBE_KUBECONFIG_H_
#define CRUNCHER_KUBE_KUBECONFIG_H_

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/environment.h"
#include "core/status.h"
#include "kube/credentials.h"
#include "kube/exec_credential.h"
#include "kube/process_runner.h"

namespace cruncher::kube {

inline constexpr std::size_t kMaxKubeconfigBytes = 16 << 20;

// PEM bytes given inline (`*-data`, already base64-decoded) or as a file
// (absolute path) that the transport reads. At most one is set.
struct PemSource {
  std::string file;
  std::string data;
  bool empty() const { return file.empty() && data.empty(); }
};

// The ServiceAccount files of in-cluster configuration; injectable for tests.
struct InClusterPaths {
  std::string token_file =
      "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::string ca_file = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
  std::string namespace_file =
      "/var/run/secrets/kubernetes.io/serviceaccount/namespace";
};

// Everything a client needs to reach one API server as one identity.
struct ClusterConfig {
  std::string server;  // "https://host:port[/path]", no trailing '/'
  std::string tls_server_name;
  bool insecure_skip_tls_verify = false;
  PemSource certificate_authority;
  PemSource client_certificate;
  PemSource client_key;
  std::string token;  // static bearer token
  std::string
      token_file;  // absolute; re-read (see TokenFileCredentialProvider)
  std::optional<ExecConfig> exec;
  std::string namespace_name;
  // Where this came from, for messages: `context "dev" of kubeconfig
  // /home/u/.kube/config` or "in-cluster configuration".
  std::string source;
  // Prefix of errors about the token file ("kubeconfig /x:
  // users[admin].tokenFile").
  std::string token_file_where;
};

struct KubeConfigOptions {
  std::string kubeconfig;          // --kubeconfig; "" = not given
  std::string context;             // --context; "" = current-context
  std::string namespace_override;  // --namespace; "" = not given
  EnvVars env;  // KUBECONFIG, HOME, KUBERNETES_SERVICE_*, POD_NAMESPACE
  InClusterPaths in_cluster;
};

// Resolves the configuration in the order above. Errors are InvalidArgument
// (bad file or flag) or NotFound (no such file, context, cluster or user, or
// no configuration at all), one line, naming the file and the field.
Result<ClusterConfig> LoadClusterConfig(const KubeConfigOptions& options);

// Step 1-3 alone: merges `paths` (skipping missing files unless
// `require_files`) and resolves the context. An empty merged config fails
// with NotFound.
Result<ClusterConfig> LoadKubeConfigFiles(
    const std::vector<std::string>& paths, bool require_files,
    const std::string& context, const std::string& namespace_override);

// Step 4: "https://" + host:port (an IPv6 host in brackets), the CA file,
// the token file, the namespace from --namespace, POD_NAMESPACE, the
// namespace file or "default". Fails with NotFound when
// KUBERNETES_SERVICE_HOST/PORT are not both set, InvalidArgument when a file
// is missing or a value malformed.
Result<ClusterConfig> LoadInClusterConfig(
    const EnvVars& env, const InClusterPaths& paths,
    const std::string& namespace_override);

// A DNS-1123 label, as namespace names are: lower-case letters, digits and
// '-', at most 63, starting and ending with a letter or digit.
bool IsValidNamespaceName(std::string_view name);

// The provider of `config`'s credentials: its exec plugin (run by `runner`),
// else its token file (re-read every minute), else its token, else none.
// Fails if the CA file that provideClusterInfo must pass cannot be read.
Result<std::shared_ptr<CredentialProvider>> NewCredentialProvider(
    const ClusterConfig& config, std::shared_ptr<ProcessRunner> runner,
    const Clock& clock, ExecProviderOptions exec_options = {});

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_KUBECONFIG_H_
