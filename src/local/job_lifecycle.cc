#include "local/job_lifecycle.h"

#include "core/job.h"

namespace cruncher::local {
namespace {

using nlohmann::json;

Status FieldError(const std::string& field, const std::string& why) {
  return InvalidArgument("job field " + field + " " + why);
}

Result<std::optional<int>> OptionalInt(const json& object, const char* key,
                                       const std::string& path, int min) {
  if (!object.is_object() || !object.contains(key) || object[key].is_null())
    return std::optional<int>();
  const json& v = object[key];
  if (!v.is_number_integer() || v.get<long long>() < min ||
      v.get<long long>() > 1'000'000'000) {
    return FieldError(path + "." + key,
                      "must be an integer >= " + std::to_string(min));
  }
  return std::optional<int>(v.get<int>());
}

Result<std::vector<std::string>> StringList(const json& container,
                                            const char* key) {
  std::vector<std::string> out;
  if (!container.contains(key) || container[key].is_null()) return out;
  const json& list = container[key];
  if (!list.is_array()) {
    return FieldError(std::string("containers[0].") + key, "must be a list");
  }
  for (const auto& item : list) {
    if (!item.is_string()) {
      return FieldError(std::string("containers[0].") + key,
                        "must contain only strings (quote numbers in YAML)");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

json Condition(const std::string& type, const std::string& reason,
               const std::string& message, Millis now) {
  json c = {{"type", type},
            {"status", "True"},
            {"lastProbeTime", FormatRfc3339(now)},
            {"lastTransitionTime", FormatRfc3339(now)}};
  if (!reason.empty()) c["reason"] = reason;
  if (!message.empty()) c["message"] = message;
  return c;
}

}  // namespace

std::string ExpandEnvReferences(
    const std::string& text,
    const std::vector<std::pair<std::string, std::string>>& env) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '$') {
      // "Double $$ are reduced to a single $" everywhere, as the kubelet
      // does (so `sh -c 'echo $$'` behaves alike on both backends); this is
      // also what makes $$(VAR) a literal $(VAR).
      out.push_back('$');
      ++i;
      continue;
    }
    if (text[i] == '$' && i + 1 < text.size() && text[i + 1] == '(') {
      size_t close = text.find(')', i + 2);
      if (close != std::string::npos) {
        std::string name = text.substr(i + 2, close - i - 2);
        const std::string* value = nullptr;
        for (const auto& [k, v] : env) {
          if (k == name) value = &v;  // the last definition wins
        }
        // An unknown reference stays exactly as written, `$$` inside it
        // included: the kubelet does not rescan it.
        out += value ? *value : text.substr(i, close - i + 1);
        i = close;
        continue;
      }
    }
    out.push_back(text[i]);
  }
  return out;
}

Result<LocalRunSpec> LocalRunSpec::FromJob(const json& job) {
  LocalRunSpec spec;
  const json::json_pointer pod_spec_ptr("/spec/template/spec");
  if (!job.contains(pod_spec_ptr) || !job[pod_spec_ptr].is_object()) {
    return FieldError("spec.template.spec", "is missing");
  }
  const json& job_spec = job["spec"];
  const json& pod_spec = job[pod_spec_ptr];
  if (!pod_spec.contains("containers") || !pod_spec["containers"].is_array() ||
      pod_spec["containers"].empty() ||
      !pod_spec["containers"][0].is_object()) {
    return FieldError("spec.template.spec.containers", "must list a container");
  }
  const json& c = pod_spec["containers"][0];

  if (c.contains("env") && !c["env"].is_null()) {
    if (!c["env"].is_array())
      return FieldError("containers[0].env", "must be a list");
    for (const auto& e : c["env"]) {
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string()) {
        return FieldError("containers[0].env", "entries need a name");
      }
      if (e.contains("valueFrom")) {
        return FieldError("containers[0].env." + e["name"].get<std::string>(),
                          "uses valueFrom, which the local executor cannot "
                          "resolve; give a value");
      }
      std::string value;
      if (e.contains("value") && !e["value"].is_null()) {
        if (!e["value"].is_string()) {
          return FieldError("containers[0].env." + e["name"].get<std::string>(),
                            "value must be a string");
        }
        value = ExpandEnvReferences(e["value"].get<std::string>(), spec.env);
      }
      spec.env.emplace_back(e["name"].get<std::string>(), std::move(value));
    }
  }
  CRUNCHER_ASSIGN_OR_RETURN(auto command, StringList(c, "command"));
  CRUNCHER_ASSIGN_OR_RETURN(auto args, StringList(c, "args"));
  if (command.empty()) {
    return FieldError("containers[0].command",
                      "is required locally: the image is not pulled, so its "
                      "entrypoint is unknown");
  }
  for (auto* list : {&command, &args}) {
    for (const auto& word : *list) {
      spec.argv.push_back(ExpandEnvReferences(word, spec.env));
    }
  }
  if (c.contains("workingDir") && c["workingDir"].is_string()) {
    spec.working_dir = c["workingDir"].get<std::string>();
  }
  for (const char* key : {"completions", "parallelism"}) {
    CRUNCHER_ASSIGN_OR_RETURN(auto n, OptionalInt(job_spec, key, "spec", 0));
    if (n && *n != 1) {
      return FieldError(std::string("spec.") + key,
                        "must be 1: the local executor runs single-pod Jobs");
    }
  }
  CRUNCHER_ASSIGN_OR_RETURN(auto limit,
                            OptionalInt(job_spec, "backoffLimit", "spec", 0));
  if (limit) spec.backoff_limit = *limit;
  CRUNCHER_ASSIGN_OR_RETURN(
      spec.active_deadline_seconds,
      OptionalInt(job_spec, "activeDeadlineSeconds", "spec", 1));
  CRUNCHER_ASSIGN_OR_RETURN(
      spec.ttl_seconds_after_finished,
      OptionalInt(job_spec, "ttlSecondsAfterFinished", "spec", 0));
  return spec;
}

void InitializeJob(json& job, Millis now, const std::string& uid) {
  job["apiVersion"] = "batch/v1";
  job["kind"] = "Job";
  job["metadata"]["creationTimestamp"] = FormatRfc3339(now);
  job["metadata"]["uid"] = uid;
  job["status"] = json::object();
}

void MarkAttemptStarted(json& job, Millis now) {
  json& st = job["status"];
  if (!st.contains("startTime")) st["startTime"] = FormatRfc3339(now);
  st["active"] = 1;
  st["ready"] = 1;
}

void MarkAttemptInterrupted(json& job) {
  json& st = job["status"];
  st.erase("active");
  st["ready"] = 0;
}

void MarkFailed(json& job, const std::string& reason,
                const std::string& message, Millis now) {
  json& st = job["status"];
  st.erase("active");
  st["ready"] = 0;
  json& conds = st["conditions"];
  if (!conds.is_array()) conds = json::array();
  conds.push_back(Condition("FailureTarget", reason, message, now));
  conds.push_back(Condition("Failed", reason, message, now));
}

std::optional<Millis> MarkAttemptFinished(json& job, const LocalRunSpec& spec,
                                          const AttemptResult& result,
                                          Millis now,
                                          const ExponentialBackoff& backoff) {
  json& st = job["status"];
  st.erase("active");
  st["ready"] = 0;
  if (result.deadline_exceeded) {
    st["failed"] = st.value("failed", 0) + 1;
    MarkFailed(job, "DeadlineExceeded",
               "Job was active longer than specified deadline", now);
    return std::nullopt;
  }
  if (result.exit_code == 0) {
    st["succeeded"] = st.value("succeeded", 0) + 1;
    st["completionTime"] = FormatRfc3339(now);
    json& conds = st["conditions"];
    if (!conds.is_array()) conds = json::array();
    conds.push_back(Condition("SuccessCriteriaMet", "CompletionsReached",
                              "Reached expected number of succeeded pods",
                              now));
    conds.push_back(Condition("Complete", "CompletionsReached",
                              "Reached expected number of succeeded pods",
                              now));
    return std::nullopt;
  }
  int failed = st.value("failed", 0) + 1;
  st["failed"] = failed;
  if (failed > spec.backoff_limit) {
    std::string message = "Job has reached the specified backoff limit";
    if (!result.platform_error.empty()) {
      message += " (last attempt: " + result.platform_error + ")";
    }
    MarkFailed(job, "BackoffLimitExceeded", message, now);
    return std::nullopt;
  }
  return now + backoff.Delay(failed);
}

}  // namespace cruncher::local
