// Exec credential plugins (client.authentication.k8s.io v1 and v1beta1), as
// kubectl and client-go run them: the `exec` stanza of a kubeconfig user
// names a command (`aws eks get-token ...`, `gke-gcloud-auth-plugin`) that
// prints an ExecCredential whose status carries a token and/or a client
// certificate and key, optionally with an expirationTimestamp.
//
// The plugin gets KUBERNETES_EXEC_INFO (an ExecCredential whose spec says it
// is not interactive, plus the cluster when provideClusterInfo is set), the
// stanza's env on top of this process's environment, and no terminal.
//
// Thread-safety: ExecCredentialProvider is safe for concurrent use; callers
// that find the cache empty wait for one run of the plugin.
#ifndef CRUNCHER_KUBE_EXEC_CREDENTIAL_H_
#define CRUNCHER_KUBE_EXEC_CREDENTIAL_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "kube/credentials.h"
#include "kube/process_runner.h"

namespace cruncher::kube {

inline constexpr std::string_view kExecApiV1 =
    "client.authentication.k8s.io/v1";
inline constexpr std::string_view kExecApiV1Beta1 =
    "client.authentication.k8s.io/v1beta1";

enum class InteractiveMode { kNever, kIfAvailable, kAlways };

// A validated `exec` stanza.
struct ExecConfig {
  std::string api_version;  // kExecApiV1 or kExecApiV1Beta1
  std::string command;      // a path (resolved) or a name looked up in PATH
  std::vector<std::string> args;
  std::vector<std::pair<std::string, std::string>> env;
  InteractiveMode interactive_mode = InteractiveMode::kIfAvailable;
  bool provide_cluster_info = false;
  std::string install_hint;  // shown when the command is not found
  // Prefix of every error: "kubeconfig /x/config: users[admin].exec".
  std::string where;
};

// The cluster as the plugin sees it in KUBERNETES_EXEC_INFO
// (provideClusterInfo).
struct ExecClusterInfo {
  std::string server;
  std::string tls_server_name;
  bool insecure_skip_tls_verify = false;
  std::string certificate_authority_pem;  // the CA bytes, file or data
};

// The KUBERNETES_EXEC_INFO value: an ExecCredential of `config.api_version`
// with spec.interactive false and, if provideClusterInfo, spec.cluster.
std::string ExecInfoJson(const ExecConfig& config,
                         const ExecClusterInfo& cluster);

// Parses and checks a plugin's stdout: a JSON ExecCredential of
// `api_version`, with a token or a certificate and key pair, and an optional
// RFC 3339 expirationTimestamp. Fails with InvalidArgument saying what is
// wrong (never quoting the output, which may hold secrets).
Result<Credentials> ParseExecCredential(std::string_view output,
                                        std::string_view api_version);

struct ExecProviderOptions {
  // Credentials are fetched again this long before their expirationTimestamp,
  // so that a request never leaves with a token about to expire.
  Millis expiry_margin_ms = 10'000;
  // Credentials are used for at least this long after the plugin handed them
  // out, even when their expirationTimestamp is already past (a skewed
  // clock, a plugin returning its stale cache): otherwise every request
  // would run the plugin. client-go does run it for every request then; a
  // 401 still drops them at once.
  Millis min_lifetime_ms = 10'000;
  Millis timeout_ms = 60'000;              // the plugin is killed after it
  std::size_t max_output_bytes = 1 << 20;  // stdout bound
};

// Runs the plugin on the first Get(), caches its credentials until their
// expirationTimestamp (less the margin, but at least min_lifetime_ms) or,
// without one, until Invalidate().
// If re-running the plugin fails while the cached credentials have not yet
// expired, those are returned and the plugin is run again on the next Get().
class ExecCredentialProvider final : public CredentialProvider {
 public:
  ExecCredentialProvider(ExecConfig config, ExecClusterInfo cluster,
                         std::shared_ptr<ProcessRunner> runner,
                         const Clock& clock, ExecProviderOptions options = {});
  Result<Credentials> Get() override;
  void Invalidate() override;

 private:
  Result<Credentials> RunPlugin();

  const ExecConfig config_;
  const ExecClusterInfo cluster_;
  const std::shared_ptr<ProcessRunner> runner_;
  const Clock& clock_;
  const ExecProviderOptions options_;
  std::mutex mu_;
  std::optional<Credentials> cached_;
  Millis cached_until_ = 0;  // with an expiry: when cached_ is fetched again
};

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_EXEC_CREDENTIAL_H_
