#include "kube/job_client.h"

#include <utility>

namespace cruncher::kube {
namespace {

std::string StringAt(const nlohmann::json& object, const char* parent,
                     const char* key) {
  auto p = object.find(parent);
  if (p == object.end() || !p->is_object()) return "";
  auto k = p->find(key);
  return k != p->end() && k->is_string() ? k->get<std::string>() : "";
}

std::string StringField(const nlohmann::json& object, const char* key) {
  auto k = object.find(key);
  return k != object.end() && k->is_string() ? k->get<std::string>() : "";
}

Result<Job> JobFrom(Result<nlohmann::json> object) {
  if (!object.ok()) return object.status();
  StripForCache(*object);
  return Job::FromJson(std::move(*object));
}

}  // namespace

void StripForCache(nlohmann::json& job) {
  auto metadata = job.find("metadata");
  if (metadata != job.end() && metadata->is_object()) {
    metadata->erase("managedFields");
  }
}

JobClient::JobClient(RestClient& rest, std::string namespace_name)
    : rest_(rest), namespace_(std::move(namespace_name)) {}

std::string JobClient::CollectionPath() const {
  return "/apis/batch/v1/namespaces/" + namespace_ + "/jobs";
}

Result<Job> JobClient::Create(nlohmann::json manifest,
                              const std::stop_token& stop) {
  if (!manifest.is_object()) {
    return InvalidArgument("a Job manifest must be a JSON object");
  }
  auto metadata = manifest.find("metadata");
  if (metadata == manifest.end() || !metadata->is_object()) {
    return InvalidArgument("the Job manifest has no metadata");
  }
  (*metadata)["namespace"] = namespace_;
  return JobFrom(
      rest_.Do({"POST", CollectionPath(), manifest.dump()}, stop, nullptr));
}

Result<Job> JobClient::Get(const std::string& name,
                           const std::stop_token& stop) {
  return JobFrom(rest_.Do({"GET", CollectionPath() + "/" + name, ""}, stop));
}

Status JobClient::Delete(const std::string& name, const std::stop_token& stop) {
  const nlohmann::json options = {{"kind", "DeleteOptions"},
                                  {"apiVersion", "v1"},
                                  {"propagationPolicy", "Background"}};
  return rest_
      .Do({"DELETE", CollectionPath() + "/" + name, options.dump()}, stop)
      .status();
}

Result<JobList> JobClient::List(const std::string& label_selector,
                                int page_size, const std::stop_token& stop) {
  JobList list;
  std::string continue_token;
  bool restarted = false;
  while (true) {
    std::vector<std::pair<std::string, std::string>> query = {
        {"labelSelector", label_selector},
        {"limit", std::to_string(page_size)}};
    if (!continue_token.empty()) query.emplace_back("continue", continue_token);
    ApiError error;
    Result<nlohmann::json> page =
        rest_.Do({"GET", WithQuery(CollectionPath(), query), ""}, stop, &error);
    if (!page.ok()) {
      if (error.http_status == 410 && !continue_token.empty() && !restarted) {
        // The continue token expired (the list took longer than etcd's
        // compaction window): start over, once.
        restarted = true;
        continue_token.clear();
        list = JobList();
        continue;
      }
      return page.status();
    }
    auto items = page->find("items");
    if (items != page->end() && items->is_array()) {
      for (auto& item : *items) {
        StripForCache(item);
        Result<Job> job = Job::FromJson(std::move(item));
        if (job.ok()) list.jobs.push_back(std::move(*job));
      }
    }
    // The first page's resourceVersion is the list's snapshot.
    if (list.resource_version.empty() || continue_token.empty()) {
      list.resource_version = StringAt(*page, "metadata", "resourceVersion");
    }
    continue_token = StringAt(*page, "metadata", "continue");
    if (continue_token.empty()) return list;
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
  Status status = rest_.Stream(
      {"GET", path, ""},
      [&](nlohmann::json object) {
        auto type = object.find("type");
        auto payload = object.find("object");
        if (type == object.end() || !type->is_string() ||
            payload == object.end() || !payload->is_object()) {
          return true;  // not an event: nothing to act on
        }
        if (*type == "ERROR") {
          // A Status inside the stream: 410 Expired/Gone when the
          // resourceVersion was compacted away.
          long code = 0;
          auto c = payload->find("code");
          if (c != payload->end() && c->is_number_integer()) {
            code = c->get<long>();
          }
          std::string reason = StringField(*payload, "reason");
          std::string message = StringField(*payload, "message");
          event_api_error = ApiError{code, reason};
          event_error =
              Status(StatusCodeForHttp(code, reason),
                     "watch " + CollectionPath() + ": " + std::to_string(code) +
                         " " + reason + ": " + message);
          return false;
        }
        StripForCache(*payload);
        return on_event(
            WatchEvent{type->get<std::string>(), std::move(*payload)});
      },
      stop, error);
  if (!event_error.ok()) {
    if (error != nullptr) *error = event_api_error;
    return event_error;
  }
  return status;
}

}  // namespace cruncher::kube
