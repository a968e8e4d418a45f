#include "core/task.h"

#include "core/json_limits.h"

namespace cruncher {

Result<TaskVariables> TaskVariables::FromBody(std::string_view body) {
  // Before parsing: copying the variables below recurses once per level.
  CRUNCHER_RETURN_IF_ERROR(CheckJsonDepth(body).WithContext("message body"));
  nlohmann::json parsed = nlohmann::json::parse(body, nullptr,
                                                /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return InvalidArgument("message body is not valid JSON");
  }
  if (!parsed.is_object()) {
    return InvalidArgument(
        std::string("message body must be a JSON object, got ") +
        parsed.type_name());
  }
  TaskVariables vars;
  for (auto& [key, value] : parsed.items()) vars.values_.emplace(key, value);
  return vars;
}

const nlohmann::json* TaskVariables::Find(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : &it->second;
}

std::string TaskVariables::Text(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

}  // namespace cruncher
