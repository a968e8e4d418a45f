// Opening what a command works on, from options: the queue (local or SQS,
// see queue_backend.h) and the Job backend (the local store of the data
// directory, or the Kubernetes API). The CLI's commands and the runtimes of
// `local serve` and `watch` share it; the CLI only turns flags into these
// options.
//
// Thread-safety: functions of their arguments and the process environment.
#ifndef CRUNCHER_APP_BACKENDS_H_
#define CRUNCHER_APP_BACKENDS_H_

#include <memory>
#include <string>

#include "app/kube_backend.h"
#include "core/job_backend.h"
#include "core/status.h"
#include "local/job_store.h"
#include "local/queue_store.h"

namespace cruncher::app {

// Where the queue and the Jobs are. The queue is local (a data directory)
// unless --queue-url names an SQS queue; Jobs are local (the data
// directory) or Kubernetes Jobs (see `backend`).
struct BackendOptions {
  std::string data_dir;
  std::string queue = "tasks";
  std::string dlq;  // "" = QUEUE-dlq
  bool local = false;
  std::string queue_url;  // SQS
  // SQS: the dead-letter queue; "" = the queue's RedrivePolicy target.
  std::string dlq_url;
  std::string endpoint_url;
  std::string region;
  std::string profile;
  // Whether opening the local stores may create the data directory and the
  // local queues. Commands that only read or act on what is there (status,
  // jobs, logs, requeue, gc, dlq) clear it: a mistyped --data-dir is then
  // "no such data directory", not a fresh empty one left behind.
  bool create = true;
  // Where Jobs run: "local" (the process executor, Jobs in the data
  // directory) or "kubernetes"; "" = kubernetes with --queue-url, else local.
  std::string backend;
  std::string kubeconfig;
  std::string context;
  std::string kube_namespace;
  double kube_qps = 100;
  int kube_burst = 200;
  std::string dlq_name() const { return dlq.empty() ? queue + "-dlq" : dlq; }
  bool kubernetes() const {
    return backend == "kubernetes" || (backend.empty() && !queue_url.empty());
  }
};

struct QueueDefaults {
  int max_receive_count = 5;
  int visibility_timeout = 30;
  // Also apply these settings to a queue that exists already (`local serve`
  // owns its queue's configuration; other commands only create it).
  bool apply_to_existing = false;
};
// Opens the local queue store and creates the source queue and its
// dead-letter queue on first use, so that a fresh data directory works with
// every command. Without options.create: NotFound if the data directory or
// a queue does not exist.
Result<std::unique_ptr<local::LocalQueueStore>> OpenLocalQueues(
    const BackendOptions& options, const QueueDefaults& defaults = {});
// Opens the Job store of the data directory (NotFound if the directory does
// not exist and options.create is false).
Result<std::unique_ptr<local::LocalJobStore>> OpenJobStore(
    const BackendOptions& options);
// The Job backend the options name: the local store, or the Kubernetes API
// (read straight from the API: for one-shot commands). Either lists and
// counts only the queue's Jobs (its cruncher.dev/queue label).
Result<std::unique_ptr<JobBackend>> OpenJobBackend(
    const BackendOptions& options);

// The Kubernetes options of `options`, as OpenKubeJobBackend takes them,
// scoped to the queue's Jobs (its cruncher.dev/queue label): commands act on
// their own queue's Jobs, not on every queue's in the namespace.
KubeBackendOptions KubeOptions(const BackendOptions& options);

}  // namespace cruncher::app

#endif  // CRUNCHER_APP_BACKENDS_H_
