// Bounds on JSON that comes from outside: message bodies, SQS request bodies,
// responses of AWS and other APIs.
//
// nlohmann::json parses iteratively, but copying, comparing, dumping and
// walking a document recurses once per level of nesting: a body nested
// 100,000 levels deep overflows the stack of whoever touches it next.
// Every parse of outside input goes through ParseJson (or CheckJsonDepth
// first), which refuses such documents before building them.
//
// Thread-safety: pure functions.
#ifndef CRUNCHER_CORE_JSON_LIMITS_H_
#define CRUNCHER_CORE_JSON_LIMITS_H_

#include <nlohmann/json.hpp>
#include <string_view>

#include "core/status.h"

namespace cruncher {

// Far deeper than any document we read legitimately needs (SQS requests nest
// 4 levels, Kubernetes objects about 15), and shallow enough that recursing
// once per level is safe on any thread's stack.
inline constexpr int kMaxJsonDepth = 128;

// InvalidArgument if `text` opens more than `max_depth` arrays or objects
// inside one another (`{}` is depth 1; a scalar is depth 0). Looks only at
// brackets outside strings, in one pass without recursion; it does not
// validate the JSON otherwise.
Status CheckJsonDepth(std::string_view text, int max_depth = kMaxJsonDepth);

// Parses `text` after CheckJsonDepth. InvalidArgument for nesting too deep or
// text that is not JSON (the message says which, and where).
Result<nlohmann::json> ParseJson(std::string_view text,
                                 int max_depth = kMaxJsonDepth);

// ParseJson that leaves out every object member named `drop_key`, at any
// depth, while parsing: for large responses whose bulk the caller never
// reads (the managedFields of a page of Kubernetes objects), so that bulk is
// never built.
Result<nlohmann::json> ParseJsonDropping(std::string_view text,
                                         std::string_view drop_key,
                                         int max_depth = kMaxJsonDepth);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_JSON_LIMITS_H_
