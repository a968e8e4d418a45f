// KubeJobBackend: the JobBackend whose Jobs are Kubernetes Jobs.
//
// Writes go to the API server. Reads come from a JobInformer when the
// backend runs one (a long-running controller: the dispatcher's unfinished
// count and its on-success checks are map look-ups, not requests), or
// straight from the API (one-shot CLI commands, where a list + watch would
// cost more than the one list they need). Jobs read from the cache are
// partial: metadata without the `task` annotation, and status; no spec (see
// JobInformer).
//
// A create whose outcome is unknown (the connection broke after the POST
// was sent; a 5xx) is never blindly repeated: the backend looks the Job up
// first, and reports AlreadyExists when it is there, so the dispatcher
// applies its ownership check, exactly as for a redelivered message.
//
// Only Jobs labelled app.kubernetes.io/managed-by=cruncher (and, when
// `queue_label` is set, cruncher.dev/queue=<it>) are listed or counted.
//
// Thread-safety: safe for concurrent use.
#ifndef CRUNCHER_KUBE_KUBE_JOB_BACKEND_H_
#define CRUNCHER_KUBE_KUBE_JOB_BACKEND_H_

#include <memory>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "core/job_backend.h"
#include "kube/events.h"
#include "kube/job_client.h"
#include "kube/job_informer.h"
#include "kube/rest_client.h"

namespace cruncher::kube {

struct KubeJobBackendOptions {
  std::string queue_label;  // "" = every queue's Jobs
  bool cache = false;       // run an informer (see above)
  // Bounds each request of a create (the POST, the GET after a lost answer,
  // the second POST); 0: the client's request timeout. The dispatcher's
  // messages must still be invisible when a create gives up, for the batch
  // to be held rather than received again: watch sets a quarter of the
  // visibility timeout.
  long create_timeout_ms = 0;
};

class KubeJobBackend final : public JobBackend {
 public:
  // Starts the informer's thread when options.cache is set.
  KubeJobBackend(std::unique_ptr<RestClient> rest,
                 KubeJobBackendOptions options);
  ~KubeJobBackend() override;  // stops the informer and waits for it
  KubeJobBackend(const KubeJobBackend&) = delete;
  KubeJobBackend& operator=(const KubeJobBackend&) = delete;

  Status Create(const nlohmann::json& manifest) override;
  // Creates the batch's Jobs concurrently (they share one HTTP/2
  // connection), one Status per manifest, in order.
  std::vector<Status> CreateBatch(const std::vector<nlohmann::json>& manifests,
                                  const std::stop_token& cancel = {}) override;
  Result<Job> Get(const std::string& name) override;
  Result<std::vector<Job>> List() override;
  Status Delete(const std::string& name) override;
  Result<int> CountUnfinished() override;
  // A Kubernetes Event on the Job (see EventRecorder).
  void RecordAction(const Job& job, std::string_view reason,
                    std::string_view message) override;
  Status StreamLogs(const std::string& name, const LogOptions& options,
                    LogSink& sink, std::stop_token stop) override;

  // Creates the Job with dryRun=All (validated and admitted, not stored);
  // `error` gets the API's reason and the fields at fault.
  Status CreateDryRun(const nlohmann::json& manifest, ApiError* error);

  // The label selector of our Jobs.
  const std::string& selector() const { return selector_; }
  const std::string& namespace_name() const { return jobs_.namespace_name(); }
  // The client, for what shares its connection and rate limit (the Lease).
  RestClient& rest() { return *rest_; }
  // Null unless options.cache.
  const JobInformer* informer() const { return informer_.get(); }

 private:
  // OK once the informer's first list has landed; Unavailable (saying why
  // the list fails) before. Requires informer_.
  Status CacheReady() const;
  // Create, ended by `stop`: a POST whose answer is lost is checked with a
  // GET before a second POST.
  Status CreateUntil(const nlohmann::json& manifest,
                     const std::stop_token& stop);

  std::unique_ptr<RestClient> rest_;
  JobClient jobs_;
  const std::string selector_;
  const long create_timeout_ms_;
  EventRecorder events_;
  std::unique_ptr<JobInformer> informer_;
  std::stop_source stop_;
  std::jthread informer_thread_;  // last: stopped and joined first
};

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_KUBE_JOB_BACKEND_H_
