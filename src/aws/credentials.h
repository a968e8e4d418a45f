// AWS credentials and the chain that finds them, in the SDKs' order:
//
//   1. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY [,
//   AWS_SESSION_TOKEN]
//   2. web identity: AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE
//      [+ AWS_ROLE_SESSION_NAME] -> STS AssumeRoleWithWebIdentity (the token
//      file is re-read on every refresh, as Kubernetes rotates it)
//   3. the profile (AWS_PROFILE or the explicit one) in the shared files:
//      role_arn + source_profile (STS AssumeRole signed with the source
//      profile's credentials) or role_arn + web_identity_token_file; static
//      keys in the credentials file; credential_process; static keys in the
//      config file
//   4. container credentials: AWS_CONTAINER_CREDENTIALS_FULL_URI (or
//      _RELATIVE_URI) with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
//      AWS_CONTAINER_AUTHORIZATION_TOKEN (EKS Pod Identity, ECS)
//   5. EC2 instance metadata (IMDSv2) with a 1 s timeout, unless
//      AWS_EC2_METADATA_DISABLED=true
//
// The first source that is configured is used; if it then fails the error is
// returned (no silent fall-through to a different identity). Temporary
// credentials are cached and refreshed ahead of their expiry.
//
// Secrets never appear in logs or errors: AwsCredentials has no operator<<,
// and error messages name the source, never the values it returned.
//
// Thread-safety: providers are safe for concurrent use.
#ifndef CRUNCHER_AWS_CREDENTIALS_H_
#define CRUNCHER_AWS_CREDENTIALS_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "aws/aws_config.h"
#include "core/clock.h"
#include "core/status.h"

namespace cruncher::net {
class HttpTransport;
}  // namespace cruncher::net

namespace cruncher::aws {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;         // empty for long-term keys
  std::optional<Millis> expiration;  // nullopt: does not expire
  std::string source;  // where they came from ("env", "profile dev", ...)
};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Returns credentials valid at `now`, fetching or refreshing them if
  // needed. Fails with the source's error (NotFound when nothing is
  // configured, Unavailable when a credential service cannot be reached,
  // FailedPrecondition when it refuses).
  virtual Result<AwsCredentials> GetCredentials(Millis now) = 0;
  // The source, for messages ("environment", "web identity role ARN ...").
  virtual std::string Describe() const = 0;
};

// Fixed credentials (tests, tools).
class StaticCredentialsProvider final : public CredentialsProvider {
 public:
  explicit StaticCredentialsProvider(AwsCredentials creds)
      : creds_(std::move(creds)) {}
  Result<AwsCredentials> GetCredentials(Millis) override { return creds_; }
  std::string Describe() const override { return creds_.source; }

 private:
  AwsCredentials creds_;
};

// Caches what `fetch` returns and calls it again once `now` is within
// `refresh_ahead_ms` of the expiry. If a refresh fails while the cached
// credentials have not yet expired, they are returned and the refresh is
// retried on the next call; once expired, the error is returned.
class RefreshingCredentialsProvider final : public CredentialsProvider {
 public:
  using Fetch = std::function<Result<AwsCredentials>(Millis now)>;
  RefreshingCredentialsProvider(std::string description, Fetch fetch,
                                Millis refresh_ahead_ms = 5 * 60 * 1000)
      : description_(std::move(description)),
        fetch_(std::move(fetch)),
        refresh_ahead_ms_(refresh_ahead_ms) {}

  Result<AwsCredentials> GetCredentials(Millis now) override;
  std::string Describe() const override { return description_; }

 private:
  const std::string description_;
  const Fetch fetch_;
  const Millis refresh_ahead_ms_;
  std::mutex mu_;
  std::optional<AwsCredentials> cached_;
};

struct CredentialChainOptions {
  EnvVars env;
  std::string profile;  // "" -> AWS_PROFILE -> "default"
  std::string region;   // for STS; "" -> resolved like any client
  std::shared_ptr<net::HttpTransport> transport;  // required
  long imds_timeout_ms = 1000;
};

// Picks the first configured source in the order above and returns its
// provider. Fails with InvalidArgument when the configuration is broken (a
// profile that does not exist, a source_profile loop, a bad file); a chain
// that finds nothing but IMDS returns the IMDS provider, whose failure names
// every source that was tried.
Result<std::shared_ptr<CredentialsProvider>> DefaultCredentialsChain(
    const CredentialChainOptions& options);

// The building blocks, exposed for tests.

// Parses credential_process output (JSON, Version 1).
Result<AwsCredentials> ParseCredentialProcessOutput(std::string_view output,
                                                    const std::string& source);

// Runs `command` with /bin/sh and parses its output. Fails with
// FailedPrecondition (exit status) or InvalidArgument (bad output); the
// output itself is never put in the message.
Result<AwsCredentials> RunCredentialProcess(const std::string& command,
                                            const std::string& source);

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_CREDENTIALS_H_
