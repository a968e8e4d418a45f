// Task variables: what a message body gives a Job template.
//
// The body is a JSON object; each top-level key is a variable. Its text, as
// substituted into template strings, is the string itself for strings and the
// compact JSON text for everything else (numbers, booleans, null, objects,
// arrays). The typed value is kept too, for a template scalar that is exactly
// one placeholder (see template.h).
//
// Thread-safety: a value type.
#ifndef CRUNCHER_CORE_TASK_H_
#define CRUNCHER_CORE_TASK_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "core/status.h"

namespace cruncher {

class TaskVariables {
 public:
  // InvalidArgument if `body` is not valid JSON, not a JSON object, or nested
  // deeper than kMaxJsonDepth (core/json_limits.h).
  static Result<TaskVariables> FromBody(std::string_view body);

  // nullptr if `name` is not a variable.
  const nlohmann::json* Find(std::string_view name) const;
  // The text a placeholder of this value becomes inside a string.
  static std::string Text(const nlohmann::json& value);

 private:
  std::map<std::string, nlohmann::json, std::less<>> values_;
};

}  // namespace cruncher

#endif  // CRUNCHER_CORE_TASK_H_
