// Job: Cruncher's view of a Kubernetes batch/v1 Job, whichever backend runs it.
//
// A Job is held as its Kubernetes JSON object (metadata, spec, status), so the
// local executor and the Kubernetes backend produce the same output shape for
// `cruncher jobs -o json`. Accessors read the fields Cruncher acts on; the
// state model follows the Job controller: `Complete` and `Failed` conditions
// are terminal; otherwise a Job with a ready pod is Running, else Pending.
//
// Thread-safety: a value type.
#ifndef CRUNCHER_CORE_JOB_H_
#define CRUNCHER_CORE_JOB_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace cruncher {

// Label and annotation keys of the contract (DESIGN.md §3).
inline constexpr std::string_view kManagedByLabel =
    "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedByValue = "cruncher";
inline constexpr std::string_view kQueueLabel = "cruncher.dev/queue";
inline constexpr std::string_view kTaskAnnotation = "task";
inline constexpr std::string_view kMessageIdAnnotation =
    "cruncher.dev/message-id";
inline constexpr std::string_view kQueueAnnotation = "cruncher.dev/queue";
inline constexpr std::string_view kReceiveCountAnnotation =
    "cruncher.dev/receive-count";

enum class JobState { kPending, kRunning, kComplete, kFailed };
std::string_view JobStateName(JobState state);
// Parses "Pending", "running", ... case-insensitively.
std::optional<JobState> ParseJobState(std::string_view text);

struct JobCondition {
  std::string
      type;  // Complete, Failed, FailureTarget, SuccessCriteriaMet, Suspended
  std::string status = "True";
  std::string reason;  // BackoffLimitExceeded, DeadlineExceeded, ...
  std::string message;
  Millis last_transition = 0;
};

class Job {
 public:
  Job() = default;
  // Wraps a Kubernetes Job object; fails if it has no metadata.name.
  static Result<Job> FromJson(nlohmann::json object);

  const nlohmann::json& json() const { return object_; }
  nlohmann::json& mutable_json() { return object_; }

  std::string name() const;
  std::string annotation(std::string_view key) const;  // "" if absent
  std::string label(std::string_view key) const;
  std::string task() const { return annotation(kTaskAnnotation); }
  bool managed_by_cruncher() const {
    return label(kManagedByLabel) == kManagedByValue;
  }

  Millis created_at() const;  // metadata.creationTimestamp
  Millis completed_at()
      const;  // completionTime, or the terminal condition's time
  int active() const;
  int ready() const;
  int succeeded() const;
  int failed() const;
  std::vector<JobCondition> conditions() const;
  // The terminal condition (Complete or Failed with status True), if any.
  std::optional<JobCondition> terminal_condition() const;
  JobState state() const;
  bool finished() const {
    JobState s = state();
    return s == JobState::kComplete || s == JobState::kFailed;
  }

 private:
  explicit Job(nlohmann::json object) : object_(std::move(object)) {}
  int StatusInt(const char* field) const;
  nlohmann::json object_;
};

// Parses an RFC 3339 timestamp ("2026-11-29T06:13:53Z"); 0 if malformed.
Millis ParseRfc3339(std::string_view text);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_JOB_H_
