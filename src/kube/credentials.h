// Credentials for the Kubernetes API and the providers that produce them.
//
// A CredentialProvider hands out what the REST client puts on a request: a
// bearer token and/or a client certificate and key (from an exec plugin).
// Providers cache; the REST client calls Invalidate() after a 401 so the next
// Get() fetches afresh (re-reads the token file, re-runs the exec plugin).
//
// Secrets never appear in errors or logs: messages name the source (file,
// plugin), never the values.
//
// Thread-safety: providers are safe for concurrent use.
#ifndef CRUNCHER_KUBE_CREDENTIALS_H_
#define CRUNCHER_KUBE_CREDENTIALS_H_

#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace cruncher::kube {

struct Credentials {
  std::string token;                   // "" = no Authorization header
  std::string client_certificate_pem;  // from an exec plugin; "" = none
  std::string client_key_pem;          // set exactly when the certificate is
  std::optional<Millis> expires_at;    // nullopt: until invalidated
};

// A bearer token goes into an HTTP header as is: a CR or LF in it would
// end the header and inject others. OK for a token without control
// characters (bytes < 0x20 and 0x7f); else InvalidArgument saying which byte
// and where, never the token.
Status CheckBearerToken(std::string_view token);

class CredentialProvider {
 public:
  virtual ~CredentialProvider() = default;
  // Returns credentials to use now, fetching them if the cache is empty,
  // stale or invalidated. Fails with the source's error, naming the source.
  virtual Result<Credentials> Get() = 0;
  // Drops the cached credentials: the server rejected them (401).
  virtual void Invalidate() = 0;
};

// A fixed token, or no credentials at all (a context without a user, or a
// client certificate from the kubeconfig that the transport presents).
class StaticCredentialProvider final : public CredentialProvider {
 public:
  explicit StaticCredentialProvider(std::string token)
      : token_(std::move(token)) {}
  Result<Credentials> Get() override { return Credentials{token_, "", "", {}}; }
  void Invalidate() override {}

 private:
  const std::string token_;
};

// A bearer token read from a file (kubeconfig `tokenFile`, the in-cluster
// ServiceAccount token), re-read once `reread_after_ms` have passed since the
// last successful read, as client-go does (bound ServiceAccount tokens rotate
// about hourly; the kubelet rewrites the file well before expiry).
//
// If a re-read fails (the file is being swapped, briefly missing), the token
// read last is returned and the read is retried on the next Get(). Before any
// successful read, `fallback_token` (kubeconfig `token` next to `tokenFile`)
// is used if set; otherwise the error is returned.
class TokenFileCredentialProvider final : public CredentialProvider {
 public:
  // `where` prefixes errors ("kubeconfig /x: users[admin].tokenFile").
  TokenFileCredentialProvider(std::string path, std::string fallback_token,
                              const Clock& clock, std::string where,
                              Millis reread_after_ms = 60'000);
  Result<Credentials> Get() override;
  void Invalidate() override;

  // A token file larger than this is refused (tokens are a few KiB).
  static constexpr std::size_t kMaxTokenBytes = 1 << 20;

 private:
  const std::string path_;
  const std::string fallback_token_;
  const Clock& clock_;
  const std::string where_;
  const Millis reread_after_ms_;
  std::mutex mu_;
  std::string token_;   // last token read; "" before the first read
  Millis read_at_ = 0;  // when token_ was read
  bool stale_ = true;   // re-read on the next Get()
};

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_CREDENTIALS_H_
