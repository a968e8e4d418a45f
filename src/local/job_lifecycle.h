// The local executor's Job controller rules, as pure functions on a Job's
// Kubernetes JSON object (no clock, no I/O: tests drive them directly).
//
// They mirror batch/v1 semantics for single-pod Jobs: status.active/ready
// while an attempt runs, status.failed counts failed attempts, retries wait
// an exponential backoff (10 s, 20 s, ... capped at 6 min, scalable), the
// Job fails with BackoffLimitExceeded after backoffLimit+1 failed attempts
// and with DeadlineExceeded once activeDeadlineSeconds have passed since
// status.startTime; success adds SuccessCriteriaMet and Complete.
//
// Thread-safety: pure functions.
#ifndef CRUNCHER_LOCAL_JOB_LIFECYCLE_H_
#define CRUNCHER_LOCAL_JOB_LIFECYCLE_H_

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/status.h"

namespace cruncher::local {

inline constexpr int kDefaultBackoffLimit = 6;  // as Kubernetes

// What the executor needs from a Job manifest to run it as a process.
struct LocalRunSpec {
  std::vector<std::string> argv;  // command + args, $(VAR) expanded
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_dir;  // "" = the executor's
  int backoff_limit = kDefaultBackoffLimit;
  std::optional<int> active_deadline_seconds;
  std::optional<int> ttl_seconds_after_finished;

  // InvalidArgument, naming the field, if the Job cannot run locally: no
  // container command, env from secrets/fields (valueFrom), more than one
  // completion or parallel pod, negative limits.
  static Result<LocalRunSpec> FromJob(const nlohmann::json& job);
};

// Expands Kubernetes' $(VAR) references from `env` (`$$` is a literal `$`,
// so $$(VAR) is literal; unknown references stay exactly as written), as the
// kubelet does for command, args and env values (k8s.io/kubernetes
// third_party/forked/golang/expansion). Rendered templates escape values for
// it (core/template.h), so values reach the process verbatim.
std::string ExpandEnvReferences(
    const std::string& text,
    const std::vector<std::pair<std::string, std::string>>& env);

// Sets metadata.creationTimestamp/uid and an empty status on a new Job.
void InitializeJob(nlohmann::json& job, Millis now, const std::string& uid);

void MarkAttemptStarted(nlohmann::json& job, Millis now);

// The attempt stopped without a verdict on the task (the executor stopped or
// crashed): the Job is pending again and the attempt does not count.
void MarkAttemptInterrupted(nlohmann::json& job);

struct AttemptResult {
  // A constructor rather than an aggregate: most results name only the
  // first two fields.
  AttemptResult(int exit_code_ = 0, bool deadline_exceeded_ = false,
                std::string platform_error_ = "")
      : exit_code(exit_code_),
        deadline_exceeded(deadline_exceeded_),
        platform_error(std::move(platform_error_)) {}
  int exit_code = 0;  // 128+N for signal N
  bool deadline_exceeded = false;
  // Why the attempt may have failed through no fault of the task (e.g. a
  // full disk under its log); "" if none is known.
  std::string platform_error;
};

// Applies a finished attempt. Returns when the next attempt may start, or
// nullopt if the Job is now finished (Complete or Failed).
std::optional<Millis> MarkAttemptFinished(nlohmann::json& job,
                                          const LocalRunSpec& spec,
                                          const AttemptResult& result,
                                          Millis now,
                                          const ExponentialBackoff& backoff);

// Fails the Job (terminal) with `reason`, e.g. DeadlineExceeded.
void MarkFailed(nlohmann::json& job, const std::string& reason,
                const std::string& message, Millis now);

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_JOB_LIFECYCLE_H_
