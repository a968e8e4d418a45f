#include "app/kube_backend.h"

#include <utility>

#include "kube/kubeconfig.h"
#include "kube/process_runner.h"
#include "kube/rest_client.h"
#include "net/http_transport.h"

namespace cruncher::app {

Result<std::unique_ptr<kube::KubeJobBackend>> OpenKubeJobBackend(
    const KubeBackendOptions& options) {
  kube::KubeConfigOptions config_options;
  config_options.kubeconfig = options.kubeconfig;
  config_options.context = options.context;
  config_options.namespace_override = options.namespace_name;
  config_options.env = ProcessEnvironment();
  CRUNCHER_ASSIGN_OR_RETURN(kube::ClusterConfig config,
                            kube::LoadClusterConfig(config_options));
  const Clock& clock = SystemClock::Get();
  CRUNCHER_ASSIGN_OR_RETURN(
      std::shared_ptr<kube::CredentialProvider> credentials,
      kube::NewCredentialProvider(
          config, std::make_shared<kube::SubprocessRunner>(), clock));
  kube::RestOptions rest_options;
  rest_options.qps = options.qps;
  rest_options.burst = options.burst;
  CRUNCHER_ASSIGN_OR_RETURN(
      std::unique_ptr<kube::RestClient> rest,
      kube::RestClient::Create(config, std::move(credentials),
                               std::make_shared<net::CurlHttpTransport>(),
                               clock, rest_options));
  return std::make_unique<kube::KubeJobBackend>(
      std::move(rest),
      kube::KubeJobBackendOptions{options.queue_label, options.cache});
}

}  // namespace cruncher::app
