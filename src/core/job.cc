#include "core/job.h"

#include <algorithm>
#include <cctype>
#include <ctime>

namespace cruncher {

std::string_view JobStateName(JobState state) {
  switch (state) {
    case JobState::kPending:
      return "Pending";
    case JobState::kRunning:
      return "Running";
    case JobState::kComplete:
      return "Complete";
    case JobState::kFailed:
      return "Failed";
  }
  return "Unknown";
}

std::optional<JobState> ParseJobState(std::string_view text) {
  std::string lower(text);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (lower == "pending") return JobState::kPending;
  if (lower == "running") return JobState::kRunning;
  if (lower == "complete" || lower == "completed") return JobState::kComplete;
  if (lower == "failed") return JobState::kFailed;
  return std::nullopt;
}

Millis ParseRfc3339(std::string_view text) {
  std::tm tm{};
  std::string s(text);
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) return 0;
  return static_cast<Millis>(timegm(&tm)) * 1000;
}

Result<Job> Job::FromJson(nlohmann::json object) {
  if (!object.is_object() || !object.contains("metadata") ||
      !object["metadata"].is_object() || !object["metadata"].contains("name") ||
      !object["metadata"]["name"].is_string()) {
    return InvalidArgument("job object has no metadata.name");
  }
  return Job(std::move(object));
}

std::string Job::name() const {
  return object_["metadata"]["name"].get<std::string>();
}

static std::string StringAt(const nlohmann::json& map, std::string_view key) {
  if (!map.is_object()) return "";
  auto it = map.find(std::string(key));
  if (it == map.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

std::string Job::annotation(std::string_view key) const {
  const auto& md = object_["metadata"];
  return md.contains("annotations") ? StringAt(md["annotations"], key) : "";
}

std::string Job::label(std::string_view key) const {
  const auto& md = object_["metadata"];
  return md.contains("labels") ? StringAt(md["labels"], key) : "";
}

Millis Job::created_at() const {
  return ParseRfc3339(StringAt(object_["metadata"], "creationTimestamp"));
}

int Job::StatusInt(const char* field) const {
  if (!object_.contains("status")) return 0;
  const auto& st = object_["status"];
  if (!st.is_object() || !st.contains(field) || !st[field].is_number_integer())
    return 0;
  return st[field].get<int>();
}

int Job::active() const { return StatusInt("active"); }
int Job::ready() const { return StatusInt("ready"); }
int Job::succeeded() const { return StatusInt("succeeded"); }
int Job::failed() const { return StatusInt("failed"); }

std::vector<JobCondition> Job::conditions() const {
  std::vector<JobCondition> out;
  if (!object_.contains("status") || !object_["status"].is_object() ||
      !object_["status"].contains("conditions"))
    return out;
  for (const auto& c : object_["status"]["conditions"]) {
    if (!c.is_object()) continue;
    JobCondition cond;
    cond.type = StringAt(c, "type");
    cond.status = StringAt(c, "status");
    cond.reason = StringAt(c, "reason");
    cond.message = StringAt(c, "message");
    cond.last_transition = ParseRfc3339(StringAt(c, "lastTransitionTime"));
    out.push_back(std::move(cond));
  }
  return out;
}

std::optional<JobCondition> Job::terminal_condition() const {
  for (auto& c : conditions()) {
    if ((c.type == "Complete" || c.type == "Failed") && c.status == "True")
      return c;
  }
  return std::nullopt;
}

Millis Job::completed_at() const {
  if (object_.contains("status") && object_["status"].is_object()) {
    Millis t = ParseRfc3339(StringAt(object_["status"], "completionTime"));
    if (t != 0) return t;
  }
  auto terminal = terminal_condition();
  return terminal ? terminal->last_transition : 0;
}

JobState Job::state() const {
  if (auto terminal = terminal_condition()) {
    return terminal->type == "Complete" ? JobState::kComplete
                                        : JobState::kFailed;
  }
  return ready() > 0 ? JobState::kRunning : JobState::kPending;
}

}  // namespace cruncher
