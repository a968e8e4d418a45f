// A minimal AWS STS client (query protocol, XML responses) for the two calls
// the credential chain needs: AssumeRoleWithWebIdentity (unsigned; the web
// identity token is the proof) and AssumeRole (signed with the source
// credentials). Transient failures (connection errors, 5xx, throttling) are
// retried up to three attempts with jittered backoff.
//
// Thread-safety: safe for concurrent use if the transport is.
#ifndef CRUNCHER_AWS_STS_H_
#define CRUNCHER_AWS_STS_H_

#include <memory>
#include <optional>
#include <string>

#include "aws/credentials.h"
#include "core/clock.h"
#include "core/status.h"
#include "net/http_transport.h"

namespace cruncher::aws {

class StsClient final {
 public:
  StsClient(std::string endpoint, std::string region,
            std::shared_ptr<net::HttpTransport> transport)
      : endpoint_(std::move(endpoint)),
        region_(std::move(region)),
        transport_(std::move(transport)) {}

  // Errors carry the STS error code and message (never the token), mapped
  // like SQS errors (InvalidIdentityToken -> FailedPrecondition, ...).
  Result<AwsCredentials> AssumeRoleWithWebIdentity(const std::string& role_arn,
                                                   const std::string& session,
                                                   const std::string& token);

  Result<AwsCredentials> AssumeRole(
      const std::string& role_arn, const std::string& session,
      const std::optional<std::string>& external_id,
      std::optional<int> duration_seconds, const AwsCredentials& source,
      Millis now);

 private:
  Result<AwsCredentials> Call(const std::string& action,
                              const std::string& body,
                              const AwsCredentials* signer, Millis now);

  const std::string endpoint_;
  const std::string region_;
  const std::shared_ptr<net::HttpTransport> transport_;
};

// Extracts the text of the first <tag>...</tag> in `xml`, entity-decoded.
std::optional<std::string> XmlElementText(std::string_view xml,
                                          std::string_view tag);

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_STS_H_
