#include "app/backends.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "core/job_name.h"

namespace cruncher::app {
namespace {

Status CheckDataDir(const BackendOptions& options) {
  std::error_code ec;
  if (options.create || std::filesystem::is_directory(options.data_dir, ec)) {
    return Status::Ok();
  }
  return NotFound("no such data directory: " + options.data_dir +
                  " (check --data-dir or CRUNCHER_DATA_DIR; `cruncher send` "
                  "and `cruncher local serve` create it)");
}

// The cruncher.dev/queue label of the queue the options name.
std::string QueueLabelOf(const BackendOptions& options) {
  return QueueLabelFor(options.queue_url.empty() ? options.queue
                                                 : options.queue_url);
}

}  // namespace

Result<std::unique_ptr<local::LocalQueueStore>> OpenLocalQueues(
    const BackendOptions& options, const QueueDefaults& defaults) {
  const std::string queue = options.queue;
  const std::string dlq = options.dlq_name();
  CRUNCHER_RETURN_IF_ERROR(local::ValidateQueueName(queue));
  CRUNCHER_RETURN_IF_ERROR(local::ValidateQueueName(dlq));
  CRUNCHER_RETURN_IF_ERROR(CheckDataDir(options));
  CRUNCHER_ASSIGN_OR_RETURN(auto store,
                            local::LocalQueueStore::Open(options.data_dir));
  auto ensure = [&](const std::string& name, const local::QueueConfig& config) {
    auto existing = store->GetQueue(name);
    if (existing.ok()) return Status::Ok();
    if (existing.status().code() != StatusCode::kNotFound)
      return existing.status();
    if (!options.create) {
      return NotFound("no queue " + name + " in " + options.data_dir);
    }
    Status created = store->CreateQueue(name, config);
    // Another process may have created it in between: that is fine.
    return created.code() == StatusCode::kAlreadyExists ? Status::Ok()
                                                        : created;
  };
  local::QueueConfig dlq_config;
  dlq_config.retention_seconds = 1'209'600;  // 14 days, as AWS advises for DLQs
  CRUNCHER_RETURN_IF_ERROR(ensure(dlq, dlq_config));
  local::QueueConfig config;
  config.visibility_timeout = defaults.visibility_timeout;
  config.redrive = local::RedrivePolicy{dlq, defaults.max_receive_count};
  CRUNCHER_RETURN_IF_ERROR(ensure(queue, config));
  if (defaults.apply_to_existing) {
    CRUNCHER_ASSIGN_OR_RETURN(local::QueueInfo info, store->GetQueue(queue));
    if (info.config.visibility_timeout != config.visibility_timeout ||
        info.config.redrive != config.redrive) {
      info.config.visibility_timeout = config.visibility_timeout;
      info.config.redrive = config.redrive;
      CRUNCHER_RETURN_IF_ERROR(store->SetQueueConfig(queue, info.config));
    }
  }
  return store;
}

Result<std::unique_ptr<local::LocalJobStore>> OpenJobStore(
    const BackendOptions& options) {
  CRUNCHER_RETURN_IF_ERROR(CheckDataDir(options));
  return local::LocalJobStore::Open(options.data_dir);
}

app::KubeBackendOptions KubeOptions(const BackendOptions& options) {
  app::KubeBackendOptions kube;
  kube.kubeconfig = options.kubeconfig;
  kube.context = options.context;
  kube.namespace_name = options.kube_namespace;
  kube.qps = options.kube_qps;
  kube.burst = options.kube_burst;
  kube.queue_label = QueueLabelOf(options);
  return kube;
}

Result<std::unique_ptr<JobBackend>> OpenJobBackend(
    const BackendOptions& options) {
  if (options.kubernetes()) {
    CRUNCHER_ASSIGN_OR_RETURN(auto backend,
                              app::OpenKubeJobBackend(KubeOptions(options)));
    return std::unique_ptr<JobBackend>(std::move(backend));
  }
  // Scoped to the queue's Jobs like the Kubernetes backend: the data
  // directory holds every local queue's Jobs.
  CRUNCHER_RETURN_IF_ERROR(CheckDataDir(options));
  CRUNCHER_ASSIGN_OR_RETURN(
      auto store,
      local::LocalJobStore::Open(options.data_dir, local::Durability::kFull,
                                 SystemClock::Get(), QueueLabelOf(options)));
  return std::unique_ptr<JobBackend>(std::move(store));
}

}  // namespace cruncher::app
