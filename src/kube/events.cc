#include "kube/events.h"

#include <utility>

#include "kube/kubeconfig.h"

namespace cruncher::kube {
namespace {

// `text` cut to at most `max` bytes without splitting a UTF-8 sequence,
// "..." marking the cut.
std::string Truncate(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t end = max - 3;
  // Back up over continuation bytes (10xxxxxx) to a character's start.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return std::string(text.substr(0, end)) + "...";
}

}  // namespace

nlohmann::json BuildJobEvent(const JobRef& job, std::string_view reason,
                             std::string_view message, EventType type,
                             const std::string& component,
                             const std::string& instance, Millis now) {
  const std::string at = FormatRfc3339(now);
  nlohmann::json source = {{"component", component}};
  if (!instance.empty()) source["host"] = instance;
  nlohmann::json event = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata",
       {{"generateName", job.name + "."}, {"namespace", job.namespace_name}}},
      {"involvedObject",
       {{"apiVersion", "batch/v1"},
        {"kind", "Job"},
        {"name", job.name},
        {"namespace", job.namespace_name},
        {"uid", job.uid}}},
      {"reason", std::string(reason)},
      {"message", Truncate(message, kMaxEventMessageBytes)},
      {"type", type == EventType::kWarning ? "Warning" : "Normal"},
      {"source", std::move(source)},
      {"reportingComponent", component},
      {"firstTimestamp", at},
      {"lastTimestamp", at},
      {"count", 1}};
  if (!instance.empty()) event["reportingInstance"] = instance;
  return event;
}

EventRecorder::EventRecorder(RestClient& client, const Clock& clock,
                             std::string component, std::string instance)
    : client_(client),
      clock_(clock),
      component_(std::move(component)),
      instance_(std::move(instance)) {}

Status EventRecorder::Record(const JobRef& job, std::string_view reason,
                             std::string_view message, EventType type,
                             const std::stop_token& stop) {
  const std::string what = "event " + std::string(reason) + " on Job " +
                           job.namespace_name + "/" + job.name;
  if (job.name.empty() || reason.empty() ||
      !IsValidNamespaceName(job.namespace_name)) {
    return InvalidArgument(what +
                           ": needs the Job's name, a valid namespace and a "
                           "reason");
  }
  const nlohmann::json event = BuildJobEvent(
      job, reason, message, type, component_, instance_, clock_.NowMillis());
  auto created = client_.Do(
      {"POST", "/api/v1/namespaces/" + job.namespace_name + "/events",
       // Invalid UTF-8 (a message quoting outside
       // text) is replaced, not thrown on.
       event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)},
      stop);
  if (!created.ok()) return created.status().WithContext(what);
  return Status::Ok();
}

}  // namespace cruncher::kube
