// Opening the Kubernetes Job backend from what the user gave: the kubeconfig
// resolution of kubectl (--kubeconfig, KUBECONFIG, ~/.kube/config, else the
// in-cluster ServiceAccount), --context, --namespace, and the client's rate
// limit. The CLI's commands and the `watch` runtime share it.
//
// Thread-safety: a function of its arguments and the process environment.
#ifndef CRUNCHER_APP_KUBE_BACKEND_H_
#define CRUNCHER_APP_KUBE_BACKEND_H_

#include <memory>
#include <string>

#include "core/status.h"
#include "core/template.h"
#include "kube/kube_job_backend.h"

namespace cruncher::app {

struct KubeBackendOptions {
  std::string kubeconfig;      // "" = KUBECONFIG, ~/.kube/config, in-cluster
  std::string context;         // "" = current-context
  std::string namespace_name;  // "" = the context's, else "default"
  double qps = 100;
  int burst = 200;
  // Scope of counts and lists (the dispatcher's --max-active counts its own
  // queue's Jobs); "" = every Job of Cruncher in the namespace.
  std::string queue_label;
  // Keep an informer cache (a long-running controller) rather than asking
  // the API on every read (one-shot commands).
  bool cache = false;
  // See kube::KubeJobBackendOptions::create_timeout_ms.
  long create_timeout_ms = 0;
};

// Errors are one line naming the file, context or field at fault
// (InvalidArgument, NotFound).
Result<std::unique_ptr<kube::KubeJobBackend>> OpenKubeJobBackend(
    const KubeBackendOptions& options);

// Before `watch` dispatches: a server-side dry run of the template's
// SampleManifest. A template every message's Job would fail with (a missing
// restartPolicy, a forbidden create, a namespace that does not exist) is an
// error here, instead of sending the whole queue to the dead-letter queue
// one message at a time. Errors only in fields the messages fill
// (JobTemplate::FilledByMessage) and an API server that does not answer
// are not: those are each message's, or an outage the dispatcher waits out.
Status CheckTemplate(kube::KubeJobBackend& backend, const JobTemplate& tmpl,
                     const std::string& template_path);

}  // namespace cruncher::app

#endif  // CRUNCHER_APP_KUBE_BACKEND_H_
