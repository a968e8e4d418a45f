// Field access for the JSON documents AWS services and credential sources
// return, tolerant of missing or mistyped fields (the callers validate what
// they need).
//
// Thread-safety: pure functions.
#ifndef CRUNCHER_AWS_JSON_FIELDS_H_
#define CRUNCHER_AWS_JSON_FIELDS_H_

#include <nlohmann/json.hpp>
#include <string>

namespace cruncher::aws {

// The string at `key` in object `j`; "" when it is absent or not a string.
inline std::string JsonString(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_JSON_FIELDS_H_
