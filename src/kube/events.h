// EventRecorder: core/v1 Events about the Jobs Cruncher acts on, so that
// `kubectl describe job` and `kubectl get events` tell an operator what
// Cruncher did to a Job and why (requeued, garbage-collected, ...).
//
// Events are best effort, as in client-go's recorder: Record makes one
// POST (a POST is never retried, so a failure costs one rate-limiter token
// and returns), and the caller logs a failure and carries on; nothing
// depends on an Event existing. Each Record creates a new Event (count 1);
// repeats are not aggregated into one Event.
//
// Thread-safety: safe for concurrent use (the RestClient is).
#ifndef CRUNCHER_KUBE_EVENTS_H_
#define CRUNCHER_KUBE_EVENTS_H_

#include <cstddef>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"
#include "kube/rest_client.h"

namespace cruncher::kube {

// The Job an Event is about. The uid ties the Event to this incarnation of
// the name: `kubectl describe` of a later Job with the same name does not
// show it.
struct JobRef {
  std::string namespace_name;
  std::string name;
  std::string uid;
};

enum class EventType { kNormal, kWarning };

// A message longer than this is cut (at a UTF-8 character boundary) and
// marked with "...": events.k8s.io caps a note at 1 KiB and Events are read
// in a terminal.
inline constexpr std::size_t kMaxEventMessageBytes = 1024;

// The Event object Record posts: involvedObject (batch/v1 Job), reason,
// message, type, source and reportingComponent `component` (and
// `instance` as source.host / reportingInstance when set), first and last
// timestamp `now`, count 1, and metadata.generateName "<job>." so the
// server picks a unique name.
nlohmann::json BuildJobEvent(const JobRef& job, std::string_view reason,
                             std::string_view message, EventType type,
                             const std::string& component,
                             const std::string& instance, Millis now);

class EventRecorder {
 public:
  // `client` and `clock` must outlive the recorder. `instance` names this
  // replica (a hostname, the leader election identity); may be "".
  EventRecorder(RestClient& client, const Clock& clock,
                std::string component = "cruncher", std::string instance = "");

  // Creates the Event in the Job's namespace. InvalidArgument for an empty
  // Job name or reason or an invalid namespace; otherwise the API's error,
  // naming the Event's reason and the Job ("event Requeued on Job ns/j: POST
  // ...: 403 Forbidden: ..."); a stop ends it as Unavailable.
  Status Record(const JobRef& job, std::string_view reason,
                std::string_view message, EventType type = EventType::kNormal,
                const std::stop_token& stop = {});

 private:
  RestClient& client_;
  const Clock& clock_;
  const std::string component_;
  const std::string instance_;
};

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_EVENTS_H_
