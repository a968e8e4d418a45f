// AWS Signature Version 4 for requests whose body is sent in full (the JSON
// and query protocols): canonical request, string to sign, signing-key
// derivation, and the X-Amz-Date / X-Amz-Security-Token / Authorization
// headers.
//
// The canonicalisation follows the SDKs: the path has dot segments and empty
// segments removed and is then percent-encoded once (an already encoded '%'
// becomes %25); the query string is taken as written in the URL (it must
// already be percent-encoded) and its pairs are sorted; every header is
// signed except hop-by-hop ones and User-Agent, and Host is derived from the
// URL when the request does not carry it. The payload hash is the SHA-256 of
// the body unless the request carries X-Amz-Content-SHA256, whose value is
// then signed as is. Checked against botocore's signer by
// tests/aws/sigv4_botocore_compare.py.
//
// Thread-safety: pure functions.
#ifndef CRUNCHER_AWS_SIGV4_H_
#define CRUNCHER_AWS_SIGV4_H_

#include <string>
#include <string_view>

#include "aws/credentials.h"
#include "aws/http_transport.h"
#include "core/clock.h"
#include "core/status.h"

namespace cruncher::aws {

// The intermediate strings, for tests and debugging. They contain no secret.
struct SigV4Parts {
  std::string canonical_request;
  std::string string_to_sign;
  std::string signed_headers;
  std::string signature;  // hex
  std::string authorization;
};

// Signs `request` in place for `service` in `region` at time `now`: removes
// any previous Authorization, X-Amz-Date and X-Amz-Security-Token headers,
// adds X-Amz-Date, X-Amz-Security-Token (when the credentials carry a session
// token) and Authorization. Fails with InvalidArgument when the URL cannot be
// parsed or the credentials are empty (the message never includes them).
Result<SigV4Parts> SignV4(HttpRequest& request, const AwsCredentials& creds,
                          std::string_view service, std::string_view region,
                          Millis now);

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_SIGV4_H_
