#include "core/json_limits.h"

#include <string>

namespace cruncher {

Status CheckJsonDepth(std::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > max_depth) {
          return InvalidArgument("JSON is nested deeper than the limit of " +
                                 std::to_string(max_depth) +
                                 " levels of arrays and objects (at byte " +
                                 std::to_string(i) + ")");
        }
        break;
      case ']':
      case '}':
        // Unbalanced closers are the parser's to report.
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return Status::Ok();
}

namespace {

Result<nlohmann::json> Parse(std::string_view text, int max_depth,
                             const nlohmann::json::parser_callback_t& cb) {
  CRUNCHER_RETURN_IF_ERROR(CheckJsonDepth(text, max_depth));
  try {
    return nlohmann::json::parse(text, cb);
  } catch (const nlohmann::json::exception& e) {
    // Syntax errors, and numbers that overflow a double (out_of_range.406,
    // "1e400"), which parse_error does not cover. e.what() reads
    // "[json.exception.parse_error.101] parse error at line 1, column 2:
    // ..."; keep the part after the bracketed id.
    std::string what = e.what();
    const size_t id_end = what.find("] ");
    return InvalidArgument(
        "not valid JSON: " +
        (id_end == std::string::npos ? what : what.substr(id_end + 2)));
  }
}

}  // namespace

Result<nlohmann::json> ParseJson(std::string_view text, int max_depth) {
  return Parse(text, max_depth, nullptr);
}

Result<nlohmann::json> ParseJsonDropping(std::string_view text,
                                         std::string_view drop_key,
                                         int max_depth) {
  return Parse(text, max_depth,
               [drop_key](int /*depth*/, nlohmann::json::parse_event_t event,
                          nlohmann::json& parsed) {
                 // Returning false for a key discards the member it names.
                 return event != nlohmann::json::parse_event_t::key ||
                        !parsed.is_string() ||
                        parsed.get_ref<const std::string&>() != drop_key;
               });
}

}  // namespace cruncher
