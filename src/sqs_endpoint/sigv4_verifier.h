// SigV4Verifier: checks the AWS Signature Version 4 on a received request.
//
// The verifier rebuilds the canonical request from the bytes the server
// received (method, path, query, the headers the client listed in
// SignedHeaders, and the SHA-256 of the exact body) and computes the expected
// signature with the secret of the access key named in the credential scope,
// through aws::ComputeSigV4Signature, the same code our signer uses (so the
// path is normalised and encoded as the SDKs do). The only verifier-side
// canonicalisation is of the query: names and values are decoded and
// re-encoded strictly, so any client percent-encoding is accepted. Signatures
// are compared in constant time. It accepts the Authorization header form
// only (not presigned query strings), requires the scope's date to match
// X-Amz-Date and its region and service to match, and rejects requests whose
// X-Amz-Date is more than 15 minutes from now.
//
// Failures are returned as an AuthFailure naming the SQS error code that AWS
// uses for that case, so the endpoint can answer as SQS does.
//
// Thread-safety: immutable after construction; Verify may be called from any
// thread.
#ifndef CRUNCHER_SQS_ENDPOINT_SIGV4_VERIFIER_H_
#define CRUNCHER_SQS_ENDPOINT_SIGV4_VERIFIER_H_

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/clock.h"

namespace cruncher::sqs {

struct AuthFailure {
  int http_status;   // 400 or 403
  std::string code;  // e.g. "SignatureDoesNotMatch"
  std::string message;
};

// Who signed a request, or why it is rejected.
struct AuthResult {
  std::string access_key;
  std::optional<AuthFailure> failure;
  bool ok() const { return !failure.has_value(); }
};

// A request as received: header names in any case, repeated headers kept.
struct SignedRequest {
  std::string method;
  std::string target;  // path and query exactly as on the request line
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

class SigV4Verifier {
 public:
  // `secrets` maps access key id → secret access key.
  SigV4Verifier(std::map<std::string, std::string> secrets, std::string region,
                std::string service)
      : secrets_(std::move(secrets)),
        region_(std::move(region)),
        service_(std::move(service)) {}

  // Returns the access key id that signed `request`, or why it is rejected:
  // MissingAuthenticationToken (no Authorization header), IncompleteSignature
  // (malformed header or scope, X-Amz-Date missing or malformed, host not
  // signed), InvalidClientTokenId (unknown key), RequestExpired (X-Amz-Date
  // off by more than 15 minutes), SignatureDoesNotMatch (scope date, region
  // or service wrong, a signed header absent, X-Amz-Content-SHA256 not the
  // body's hash, or wrong signature).
  AuthResult Verify(const SignedRequest& request, Millis now) const;

 private:
  const std::map<std::string, std::string> secrets_;
  const std::string region_;
  const std::string service_;
};

// The region of the credential scope in an Authorization header value
// ("AWS4-HMAC-SHA256 Credential=KEY/DATE/REGION/SERVICE/aws4_request, ..."),
// or nullopt if there is no scope or its region is not 1-32 of a-z 0-9 -.
// Checks nothing else: Verify does.
std::optional<std::string> SigningRegion(std::string_view authorization);

}  // namespace cruncher::sqs

#endif  // CRUNCHER_SQS_ENDPOINT_SIGV4_VERIFIER_H_
