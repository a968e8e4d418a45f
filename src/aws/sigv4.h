// AWS Signature Version 4 for requests whose body is sent in full (the JSON
// and query protocols): canonical request, string to sign, signing-key
// derivation, and the X-Amz-Date / X-Amz-Security-Token / Authorization
// headers. SignV4 signs outgoing requests; ComputeSigV4Signature is the
// shared core that both it and the SQS endpoint's verifier
// (sqs_endpoint/sigv4_verifier.h) use, so the two cannot drift apart.
//
// The canonicalisation follows the SDKs: the path has dot segments and empty
// segments removed and is then percent-encoded once (an already encoded '%'
// becomes %25); the query string is taken as written in the URL (it must
// already be percent-encoded) and its pairs are sorted; header values are
// trimmed with inner whitespace runs collapsed, repeated headers joined with
// ','. SignV4 signs every header except hop-by-hop ones and User-Agent, and
// derives Host from the URL when the request does not carry it. Its payload
// hash is the SHA-256 of the body unless the request carries
// X-Amz-Content-SHA256, whose value is then signed as is. Checked against
// botocore's signer by tests/aws/sigv4_botocore_compare.py.
//
// Thread-safety: pure functions.
#ifndef CRUNCHER_AWS_SIGV4_H_
#define CRUNCHER_AWS_SIGV4_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/credentials.h"
#include "core/clock.h"
#include "core/status.h"
#include "net/http_transport.h"

namespace cruncher::aws {

// The intermediate strings, for tests and debugging. They contain no secret.
struct SigV4Parts {
  std::string canonical_request;
  std::string string_to_sign;
  std::string scope;  // DAY/REGION/SERVICE/aws4_request
  std::string signed_headers;
  std::string signature;      // hex
  std::string authorization;  // set by SignV4 only
};

// The algorithm name that opens the Authorization header and string to sign.
inline constexpr std::string_view kSigV4Algorithm = "AWS4-HMAC-SHA256";

// Everything a signature covers. The views must outlive the call.
struct SigV4Input {
  std::string_view method;  // upper-cased for signing
  std::string_view path;    // as on the wire (percent-encoded); "" means "/"
  std::string_view query;   // as on the wire, without the '?'
  // The signed headers in SignedHeaders order: lower-case name and canonical
  // value (see CanonicalHeaderValue).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string_view payload_hash;  // hex SHA-256 of the body, or as declared
  std::string_view amz_date;      // "20150830T123600Z"; the scope's day is
                                  // its first 8 characters
  std::string_view region;
  std::string_view service;
};

// The values of every header named `lower_name` (compared case-insensitively)
// in `headers`, each trimmed with inner whitespace runs collapsed to one
// space, joined with ','; nullopt when there is none.
std::optional<std::string> CanonicalHeaderValue(
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::string_view lower_name);

// Builds the canonical request and string to sign for `input`, derives the
// signing key from `secret_access_key`, and returns every part except
// `authorization`, which is left empty. Never fails: any input is signed as
// given.
SigV4Parts ComputeSigV4Signature(const SigV4Input& input,
                                 std::string_view secret_access_key);

// Signs `request` in place for `service` in `region` at time `now`: removes
// any previous Authorization, X-Amz-Date and X-Amz-Security-Token headers,
// adds X-Amz-Date, X-Amz-Security-Token (when the credentials carry a session
// token) and Authorization. Fails with InvalidArgument when the URL cannot be
// parsed or the credentials are empty (the message never includes them).
Result<SigV4Parts> SignV4(net::HttpRequest& request,
                          const AwsCredentials& creds, std::string_view service,
                          std::string_view region, Millis now);

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_SIGV4_H_
