#include "kube/kube_job_backend.h"

#include <algorithm>
#include <future>
#include <utility>

#include "core/job_name.h"
#include "core/log.h"

namespace cruncher::kube {
namespace {

std::string SelectorFor(const KubeJobBackendOptions& options) {
  std::string selector =
      std::string(kManagedByLabel) + "=" + std::string(kManagedByValue);
  if (!options.queue_label.empty()) {
    selector += "," + std::string(kQueueLabel) + "=" + options.queue_label;
  }
  return selector;
}

}  // namespace

KubeJobBackend::KubeJobBackend(std::unique_ptr<RestClient> rest,
                               KubeJobBackendOptions options)
    : rest_(std::move(rest)),
      jobs_(*rest_, rest_->namespace_name()),
      selector_(SelectorFor(options)),
      create_timeout_ms_(options.create_timeout_ms),
      events_(*rest_, rest_->clock()) {
  if (options.cache) {
    informer_ = std::make_unique<JobInformer>(jobs_, selector_, rest_->clock());
    informer_thread_ = std::jthread(
        [this, stop = stop_.get_token()] { informer_->Run(stop); });
  }
}

KubeJobBackend::~KubeJobBackend() {
  stop_.request_stop();
  if (informer_thread_.joinable()) informer_thread_.join();
}

Status KubeJobBackend::CacheReady() const {
  if (informer_->HasSynced()) return Status::Ok();
  // Not waiting: the caller (the dispatcher) backs off and can be stopped,
  // which a wait here could not.
  const std::string why = informer_->SyncError();
  return Unavailable("the cache of Jobs (" + selector_ +
                     ") has not been listed yet" +
                     (why.empty() ? "" : ": " + why));
}

Status KubeJobBackend::Create(const nlohmann::json& manifest) {
  return CreateUntil(manifest, stop_.get_token());
}

Status KubeJobBackend::CreateUntil(const nlohmann::json& manifest,
                                   const std::stop_token& stop) {
  const std::string name = MetadataString(manifest, "name");
  // Two tries at most: a second POST only after a GET showed the first did
  // not create the Job.
  Status last;
  for (int attempt = 0; attempt < 2; ++attempt) {
    Result<Job> created = jobs_.Create(manifest, stop, create_timeout_ms_);
    if (created.ok()) {
      if (informer_ != nullptr) informer_->Put(*created);
      return Status::Ok();
    }
    last = created.status();
    if (last.code() != StatusCode::kUnavailable || name.empty()) return last;
    // The outcome is unknown: look before creating again.
    Result<Job> existing = jobs_.Get(name, stop, create_timeout_ms_);
    if (existing.ok()) {
      if (informer_ != nullptr) informer_->Put(*existing);
      return AlreadyExists("job " + name + " exists (created by the request " +
                           "whose answer was lost: " + last.message() + ")");
    }
    if (existing.status().code() != StatusCode::kNotFound) return last;
  }
  return last;
}

std::vector<Status> KubeJobBackend::CreateBatch(
    const std::vector<nlohmann::json>& manifests,
    const std::stop_token& cancel) {
  // Ended by the caller's cancel or by this backend's destruction.
  std::stop_source either;
  std::stop_callback on_cancel(cancel, [&either] { either.request_stop(); });
  std::stop_callback on_close(stop_.get_token(),
                              [&either] { either.request_stop(); });
  std::vector<std::future<Status>> pending;
  pending.reserve(manifests.size());
  for (const auto& manifest : manifests) {
    pending.push_back(std::async(std::launch::async,
                                 [this, &manifest, stop = either.get_token()] {
                                   return CreateUntil(manifest, stop);
                                 }));
  }
  std::vector<Status> out;
  out.reserve(pending.size());
  for (auto& p : pending) out.push_back(p.get());
  return out;
}

Status KubeJobBackend::CreateDryRun(const nlohmann::json& manifest,
                                    ApiError* error) {
  return jobs_.CreateDryRun(manifest, stop_.get_token(), error);
}

Result<Job> KubeJobBackend::Get(const std::string& name) {
  if (informer_ != nullptr && informer_->HasSynced()) {
    if (std::optional<Job> job = informer_->Get(name)) return std::move(*job);
    // Not (yet) seen by the watch: another instance may have just made it.
  }
  return jobs_.Get(name, stop_.get_token());
}

Result<std::vector<Job>> KubeJobBackend::List() {
  if (informer_ != nullptr) {
    CRUNCHER_RETURN_IF_ERROR(CacheReady());
    return informer_->List();
  }
  CRUNCHER_ASSIGN_OR_RETURN(JobList list,
                            jobs_.List(selector_, 500, stop_.get_token()));
  std::sort(list.jobs.begin(), list.jobs.end(), [](const Job& a, const Job& b) {
    return std::make_pair(a.created_at(), a.name()) <
           std::make_pair(b.created_at(), b.name());
  });
  return std::move(list.jobs);
}

Status KubeJobBackend::Delete(const std::string& name) {
  Status deleted = jobs_.Delete(name, stop_.get_token());
  if (informer_ != nullptr &&
      (deleted.ok() || deleted.code() == StatusCode::kNotFound)) {
    informer_->Remove(name);
  }
  return deleted;
}

void KubeJobBackend::RecordAction(const Job& job, std::string_view reason,
                                  std::string_view message) {
  const std::string uid = MetadataString(job.json(), "uid");
  Status recorded =
      events_.Record(JobRef{jobs_.namespace_name(), job.name(), uid}, reason,
                     message, EventType::kNormal, stop_.get_token());
  if (!recorded.ok()) {
    Log(LogLevel::kWarn, "event_not_recorded",
        {{"job", job.name()},
         {"reason", std::string(reason)},
         {"error", recorded.message()}});
  }
}

Result<int> KubeJobBackend::CountUnfinished() {
  if (informer_ != nullptr) {
    CRUNCHER_RETURN_IF_ERROR(CacheReady());
    return informer_->CountUnfinished();
  }
  CRUNCHER_ASSIGN_OR_RETURN(std::vector<Job> jobs, List());
  return static_cast<int>(std::count_if(
      jobs.begin(), jobs.end(), [](const Job& j) { return !j.finished(); }));
}

Status KubeJobBackend::StreamLogs(const std::string& name,
                                  const LogOptions& options, LogSink& sink,
                                  std::stop_token stop) {
  CRUNCHER_RETURN_IF_ERROR(CheckJobName(name));
  if (options.follow) {
    return InvalidArgument(
        "logs --follow is not supported with the Kubernetes backend; use "
        "kubectl logs -f job/" +
        name);
  }
  CRUNCHER_RETURN_IF_ERROR(jobs_.Get(name, stop).status());
  const std::string pods_path =
      "/api/v1/namespaces/" + jobs_.namespace_name() + "/pods";
  CRUNCHER_ASSIGN_OR_RETURN(
      nlohmann::json pods,
      rest_->Do(
          {"GET",
           WithQuery(pods_path, {{"labelSelector",
                                  "batch.kubernetes.io/job-name=" + name}}),
           ""},
          stop));
  std::vector<std::pair<Millis, std::string>> names;
  auto items = pods.find("items");
  if (items != pods.end() && items->is_array()) {
    for (const auto& pod : *items) {
      auto metadata = pod.find("metadata");
      if (metadata == pod.end() || !metadata->is_object()) continue;
      auto pod_name = metadata->find("name");
      if (pod_name == metadata->end() || !pod_name->is_string()) continue;
      auto created = metadata->find("creationTimestamp");
      names.emplace_back(created != metadata->end() && created->is_string()
                             ? ParseRfc3339(created->get<std::string>())
                             : 0,
                         pod_name->get<std::string>());
    }
  }
  std::sort(names.begin(), names.end());
  for (const auto& [created, pod] : names) {
    // The name goes into the path: a server's answer is not trusted more
    // than a user's.
    if (!IsValidObjectName(pod)) {
      return Unavailable("the pods of job " + name +
                         " include one with an invalid name");
    }
    std::vector<std::pair<std::string, std::string>> query;
    if (options.tail_lines >= 0) {
      query.emplace_back("tailLines", std::to_string(options.tail_lines));
    }
    Result<std::string> log = rest_->DoText(
        {"GET", WithQuery(pods_path + "/" + pod + "/log", query), ""}, stop);
    if (!log.ok()) return log.status().WithContext("pod " + pod);
    sink.BeginAttempt(pod);
    sink.Write(*log);
  }
  return Status::Ok();
}

}  // namespace cruncher::kube
