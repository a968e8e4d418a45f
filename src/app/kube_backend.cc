#include "app/kube_backend.h"

#include <utility>
#include <vector>

#include "core/log.h"
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
      kube::KubeJobBackendOptions{options.queue_label, options.cache,
                                  options.create_timeout_ms});
}

namespace {

// One dry run: OK, or why the template (not a message) fails, or
// Unavailable when the server's answer says nothing either way.
Status DryRun(kube::KubeJobBackend& backend, const JobTemplate& tmpl,
              const std::string& template_path, bool numbers) {
  kube::ApiError error;
  const Status checked =
      backend.CreateDryRun(tmpl.SampleManifest(numbers), &error);
  if (checked.ok()) return checked;
  if (checked.code() == StatusCode::kUnavailable ||
      checked.code() == StatusCode::kThrottled) {
    return checked;
  }
  if (checked.code() == StatusCode::kInvalidArgument) {
    if (checked.message().find("does not support dry run") !=
        std::string::npos) {
      // An admission webhook that does not take dry runs: unknown.
      return Unavailable(checked.message());
    }
    if (error.fields.empty()) {
      // A body the server could not decode (a number where a string goes):
      // a lone placeholder's type decides that, and so the message does.
      if (tmpl.has_typed_placeholders()) return Unavailable(checked.message());
      return InvalidArgument(
          "template " + template_path +
          " is rejected by the API server: " + checked.message());
    }
    std::string template_fields;
    for (const std::string& field : error.fields) {
      if (tmpl.FilledByMessage(field)) continue;
      template_fields += (template_fields.empty() ? "" : ", ") + field;
    }
    if (template_fields.empty()) return Status::Ok();  // each message's
    return InvalidArgument(
        "template " + template_path + " is rejected by the API server for " +
        template_fields + " (not filled by messages): " + checked.message());
  }
  // 401, an RBAC 403 ("cannot create resource"), a missing namespace: no
  // create can succeed. Anything else (an exhausted quota, a webhook that
  // does not take dry runs) may pass for real creates: a warning.
  const std::string& text = checked.message();
  const bool every_create_fails =
      error.http_status == 401 ||
      (error.http_status == 403 &&
       text.find("cannot create resource") != std::string::npos) ||
      (error.http_status == 404 &&
       text.find("namespaces") != std::string::npos);
  if (!every_create_fails) return Unavailable(text);
  return Status(checked.code(), "template " + template_path +
                                    ": a dry-run create fails: " + text);
}

}  // namespace

Status CheckTemplate(kube::KubeJobBackend& backend, const JobTemplate& tmpl,
                     const std::string& template_path) {
  // Lone placeholders as numbers first (backoffLimit: $n), then as text
  // (name: $cname): one of the two fits a template whose lone placeholders
  // are all of one kind.
  Status checked = DryRun(backend, tmpl, template_path, true);
  if (checked.code() == StatusCode::kUnavailable &&
      tmpl.has_typed_placeholders()) {
    checked = DryRun(backend, tmpl, template_path, false);
  }
  if (checked.code() == StatusCode::kUnavailable ||
      checked.code() == StatusCode::kThrottled) {
    Log(LogLevel::kWarn, "template_check_skipped",
        {{"template", template_path}, {"error", checked.message()}});
    return Status::Ok();
  }
  return checked;
}

}  // namespace cruncher::app
