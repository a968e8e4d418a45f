#include "kube/job_client.h"

#include <utility>

#include "core/job_name.h"
#include "core/json_limits.h"
#include "core/log.h"

namespace cruncher::kube {
namespace {

std::string StringField(const nlohmann::json& object, const char* key) {
  auto k = object.find(key);
  return k != object.end() && k->is_string() ? k->get<std::string>() : "";
}

// A Job from a response body, without building its managedFields.
Result<Job> JobFrom(const ApiRequest& request, Result<std::string> text) {
  if (!text.ok()) return text.status();
  // A 2xx whose body is not a Job (a proxy, a server change) says nothing
  // about the object: Unavailable, never a rejection of it.
  Result<nlohmann::json> object = ParseJsonDropping(*text, "managedFields");
  if (!object.ok()) {
    return Unavailable(request.method + " " + request.path + ": " +
                       object.status().message());
  }
  Result<Job> job = Job::FromJson(std::move(*object));
  if (!job.ok()) {
    return Unavailable(request.method + " " + request.path +
                       ": the answer is not a Job: " + job.status().message());
  }
  return job;
}

// What Cruncher never reads and that is most of a Job's bytes.
void StripManagedFields(nlohmann::json& job) {
  auto metadata = job.find("metadata");
  if (metadata != job.end() && metadata->is_object()) {
    metadata->erase("managedFields");
  }
}

}  // namespace

std::string MetadataString(const nlohmann::json& object, const char* key) {
  auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return "";
  auto value = metadata->find(key);
  return value != metadata->end() && value->is_string()
             ? value->get<std::string>()
             : "";
}

JobClient::JobClient(RestClient& rest, std::string namespace_name)
    : rest_(rest), namespace_(std::move(namespace_name)) {}

std::string JobClient::CollectionPath() const {
  return "/apis/batch/v1/namespaces/" + namespace_ + "/jobs";
}

Status JobClient::PlaceInNamespace(nlohmann::json& manifest) const {
  if (!manifest.is_object()) {
    return InvalidArgument("a Job manifest must be a JSON object");
  }
  auto metadata = manifest.find("metadata");
  if (metadata == manifest.end() || !metadata->is_object()) {
    return InvalidArgument("the Job manifest has no metadata");
  }
  (*metadata)["namespace"] = namespace_;
  return Status::Ok();
}

Result<Job> JobClient::Create(nlohmann::json manifest,
                              const std::stop_token& stop, long timeout_ms) {
  CRUNCHER_RETURN_IF_ERROR(PlaceInNamespace(manifest));
  ApiRequest request{"POST", CollectionPath(), manifest.dump()};
  request.timeout_ms = timeout_ms;
  return JobFrom(request, rest_.DoText(request, stop));
}

Status JobClient::CreateDryRun(nlohmann::json manifest,
                               const std::stop_token& stop, ApiError* error) {
  CRUNCHER_RETURN_IF_ERROR(PlaceInNamespace(manifest));
  // A start-up check: bounded well below a Pod's grace period, so that an
  // API server that does not answer delays the start by no more than this.
  ApiRequest request{"POST", WithQuery(CollectionPath(), {{"dryRun", "All"}}),
                     manifest.dump()};
  request.timeout_ms = kDryRunTimeoutMs;
  return rest_.DoText(request, stop, error).status();
}

Result<Job> JobClient::Get(const std::string& name, const std::stop_token& stop,
                           long timeout_ms) {
  CRUNCHER_RETURN_IF_ERROR(CheckJobName(name));
  ApiRequest request{"GET", CollectionPath() + "/" + name, ""};
  request.timeout_ms = timeout_ms;
  return JobFrom(request, rest_.DoText(request, stop));
}

Status JobClient::Delete(const std::string& name, const std::stop_token& stop) {
  CRUNCHER_RETURN_IF_ERROR(CheckJobName(name));
  const nlohmann::json options = {{"kind", "DeleteOptions"},
                                  {"apiVersion", "v1"},
                                  {"propagationPolicy", "Background"}};
  return rest_
      .Do({"DELETE", CollectionPath() + "/" + name, options.dump()}, stop)
      .status();
}

Result<std::string> JobClient::ListEach(
    const std::string& label_selector, int page_size,
    const std::function<void(Job job)>& each, const std::stop_token& stop,
    ApiError* error) {
  std::string resource_version;
  std::string continue_token;
  do {
    std::vector<std::pair<std::string, std::string>> query = {
        {"labelSelector", label_selector},
        {"limit", std::to_string(page_size)}};
    if (!continue_token.empty()) query.emplace_back("continue", continue_token);
    CRUNCHER_ASSIGN_OR_RETURN(
        std::string text,
        rest_.DoText({"GET", WithQuery(CollectionPath(), query), ""}, stop,
                     error));
    // managedFields is most of a Job's bytes and never read: not built.
    Result<nlohmann::json> page = ParseJsonDropping(text, "managedFields");
    text = std::string();
    if (!page.ok()) {
      return Unavailable("list " + CollectionPath() + ": " +
                         page.status().message());
    }
    auto items = page->find("items");
    if (items == page->end() || !items->is_array()) {
      return Unavailable("list " + CollectionPath() +
                         ": the answer has no items array: not a JobList");
    }
    // An item that is not a Job (no name, not an object) cannot be cached
    // or acted on. It is skipped, counted and logged rather than failing
    // the list: one odd object must not blind the informer to every other
    // Job (and stop the dispatcher); the warning makes it visible.
    std::size_t skipped = 0;
    std::string first_skipped;
    for (auto& item : *items) {
      Result<Job> job = Job::FromJson(std::move(item));
      if (job.ok()) {
        each(std::move(*job));
      } else if (skipped++ == 0) {
        first_skipped = job.status().message();
      }
    }
    if (skipped > 0) {
      Log(LogLevel::kWarn, "job_list_items_skipped",
          {{"namespace", namespace_},
           {"skipped", skipped},
           {"first_error", first_skipped.substr(0, 200)}});
    }
    // The first page's resourceVersion is the list's snapshot.
    if (continue_token.empty()) {
      resource_version = MetadataString(*page, "resourceVersion");
    }
    std::string next = MetadataString(*page, "continue");
    // A server that hands back the token it was given would be listed
    // forever.
    if (!next.empty() && next == continue_token) {
      return Unavailable("list " + CollectionPath() +
                         ": the server answered the continue token with the "
                         "same token; the list would never end");
    }
    continue_token = std::move(next);
  } while (!continue_token.empty());
  return resource_version;
}

Result<JobList> JobClient::List(const std::string& label_selector,
                                int page_size, const std::stop_token& stop) {
  for (int attempt = 0;; ++attempt) {
    JobList list;
    ApiError error;
    Result<std::string> rv = ListEach(
        label_selector, page_size,
        [&](Job job) { list.jobs.push_back(std::move(job)); }, stop, &error);
    if (rv.ok()) {
      list.resource_version = std::move(*rv);
      return list;
    }
    // The continue token expired (the list took longer than etcd's
    // compaction window): start over, once, as client-go's pager does.
    if (error.http_status != 410 || attempt > 0) return rv.status();
  }
}

Status JobClient::Watch(const std::string& label_selector,
                        const std::string& resource_version,
                        int timeout_seconds,
                        const std::function<bool(WatchEvent event)>& on_event,
                        const std::stop_token& stop, ApiError* error) {
  const std::string path = WithQuery(
      CollectionPath(), {{"watch", "1"},
                         {"labelSelector", label_selector},
                         {"resourceVersion", resource_version},
                         {"allowWatchBookmarks", "true"},
                         {"timeoutSeconds", std::to_string(timeout_seconds)}});
  Status event_error;
  ApiError event_api_error;
  // The server ends the watch after timeoutSeconds; a connection that went
  // half-open never would: the client gives up a minute later.
  ApiRequest request{"GET", path, ""};
  request.timeout_ms = (static_cast<long>(timeout_seconds) + 60) * 1000;
  Status status = rest_.Stream(
      request,
      [&](nlohmann::json object) {
        auto type = object.find("type");
        auto payload = object.find("object");
        const bool is_event = object.is_object() && type != object.end() &&
                              type->is_string() && payload != object.end() &&
                              payload->is_object();
        const std::string type_name =
            is_event ? type->get<std::string>() : std::string();
        const bool about_a_job = type_name == "ADDED" ||
                                 type_name == "MODIFIED" ||
                                 type_name == "DELETED";
        // What cannot be decoded ends the watch, as client-go's decoder
        // does: the caller lists again rather than miss a change.
        if (!is_event ||
            (!about_a_job && type_name != "BOOKMARK" && type_name != "ERROR") ||
            (about_a_job && MetadataString(*payload, "name").empty())) {
          event_error = Unavailable("watch " + CollectionPath() +
                                    ": an event that is not a Job's ADDED, "
                                    "MODIFIED, DELETED, BOOKMARK or ERROR: " +
                                    Excerpt(object.dump()));
          return false;
        }
        if (type_name == "ERROR") {
          // A Status inside the stream: 410 Expired/Gone when the
          // resourceVersion was compacted away.
          long code = 0;
          auto c = payload->find("code");
          if (c != payload->end() && c->is_number_integer()) {
            code = c->get<long>();
          }
          std::string reason = StringField(*payload, "reason");
          std::string message = StringField(*payload, "message");
          event_api_error = ApiError{code, reason, {}};
          event_error =
              Status(StatusCodeForHttp(code, reason),
                     "watch " + CollectionPath() + ": " + std::to_string(code) +
                         " " + reason + ": " + message);
          return false;
        }
        StripManagedFields(*payload);
        return on_event(WatchEvent{type_name, std::move(*payload)});
      },
      stop, error);
  if (!event_error.ok()) {
    if (error != nullptr) *error = event_api_error;
    return event_error;
  }
  return status;
}

}  // namespace cruncher::kube
