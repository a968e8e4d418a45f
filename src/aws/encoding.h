// Encoding helpers shared by the AWS code: URL parsing, percent-encoding,
// HMAC and the timestamp formats AWS uses (hex, base64 and SHA-256 are in
// core/encoding.h).
//
// Thread-safety: pure functions; safe from any thread.
#ifndef CRUNCHER_AWS_ENCODING_H_
#define CRUNCHER_AWS_ENCODING_H_

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "core/clock.h"
#include "core/encoding.h"
#include "core/status.h"

namespace cruncher::aws {

// The parts of an absolute http(s) URL. `path` and `query` are kept exactly
// as written (still percent-encoded); `host` is lower-cased.
struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // without brackets for IPv6
  std::optional<int> port;
  std::string path;   // "" when the URL has none
  std::string query;  // without the '?'

  // "scheme://host[:port]" with the port only when it is not the default.
  std::string Origin() const;
  // The Host header value: lower-case host, port only when not the default.
  std::string HostHeader() const;
};

// Fails with InvalidArgument (naming the URL) for anything but an absolute
// http:// or https:// URL with a host.
Result<Url> ParseUrl(std::string_view url);

// Percent-encodes every byte except A-Z a-z 0-9 - _ . ~ and the characters in
// `also_safe`, with upper-case hex digits (RFC 3986, as SigV4 requires).
std::string PercentEncode(std::string_view in, std::string_view also_safe = "");

// Form-encodes key=value pairs for the AWS query protocol.
std::string FormEncode(
    std::initializer_list<std::pair<std::string_view, std::string_view>> kv);

std::string HmacSha256(std::string_view key, std::string_view data);  // raw

// "20150830T123600Z" and "20150830".
std::string FormatAmzDate(Millis t);
std::string FormatAmzDay(Millis t);

// ISO 8601 / RFC 3339 UTC timestamps as STS and credential sources print
// them ("2024-05-01T12:00:00Z", fractional seconds and "+00:00" accepted).
// Fails with InvalidArgument.
Result<Millis> ParseIso8601(std::string_view text);

// RFC 7231 HTTP dates ("Tue, 15 Nov 1994 08:12:31 GMT"); nullopt if malformed.
std::optional<Millis> ParseHttpDate(std::string_view text);

// Reads a whole file; NotFound / Unavailable name the path on failure.
Result<std::string> ReadFile(const std::string& path);

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_ENCODING_H_
