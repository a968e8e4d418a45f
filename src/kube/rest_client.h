// RestClient: requests to one Kubernetes API server as one identity, with
// client-go's manners.
//
//  - A client-side token bucket (qps, burst) in front of every request,
//    watches included, so a burst of messages cannot flood the API server.
//  - 429 is retried for every method after the server's Retry-After (capped)
//    or a backoff; 5xx and connection failures are retried with exponential
//    backoff for reads, deletes and other idempotent requests, but never for
//    a POST, whose outcome is then unknown: the caller checks (GET) before
//    creating again. A timeout is not retried (the caller's own loop
//    does, so a read command waits one request timeout, not six). A
//    failure retrying cannot fix (the server's certificate does not verify,
//    a CA file is unusable) is FailedPrecondition at once.
//  - While the server does not answer (transport failures, 5xx) a warning
//    kube_api_not_answering is logged, at most once per 10 s per reason.
//  - A 401 drops the cached credentials (re-runs the exec plugin, re-reads
//    the token file) and retries once.
//  - An error carries the API's Status: the HTTP status, its reason and its
//    message ("POST /apis/batch/v1/namespaces/ns/jobs: 403 Forbidden:
//    jobs.batch is forbidden: User ... cannot create resource ...").
//
// Thread-safety: safe for concurrent use; requests run in parallel over the
// shared transport.
#ifndef CRUNCHER_KUBE_REST_CLIENT_H_
#define CRUNCHER_KUBE_REST_CLIENT_H_

#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"
#include "kube/credentials.h"
#include "kube/kubeconfig.h"
#include "net/http_transport.h"

namespace cruncher::kube {

struct RestOptions {
  // Client-side rate limit (--kube-qps, --kube-burst). client-go defaults to
  // 5/10, which caps a controller at 5 creates/s; the API server here takes
  // hundreds. Bounded by the flags' validation, not here.
  double qps = 100;
  int burst = 200;
  // Retries after the first attempt, for retryable failures (see above).
  int max_retries = 5;
  ExponentialBackoff retry_backoff{250, 8'000};
  // A Retry-After longer than this is cut to it.
  Millis max_retry_after = 60'000;
  long request_timeout_ms = 30'000;
  long connect_timeout_ms = 5'000;
  std::string user_agent = "cruncher";
};

struct ApiRequest {
  std::string method = "GET";
  std::string path;  // "/apis/batch/v1/namespaces/ns/jobs?limit=500"
  std::string body;  // JSON; "" for none
  // The whole exchange's bound; 0: RestOptions::request_timeout_ms, and
  // none for a Stream.
  long timeout_ms = 0;
};

// What the server said when a request failed with an HTTP status: 0 for a
// transport failure. `reason` is the Status object's (AlreadyExists,
// Forbidden, Expired, Gone, ...), or the HTTP reason when it sent none.
struct ApiError {
  long http_status = 0;
  std::string reason;
  // The fields a 422's details.causes name ("spec.template.spec.
  // restartPolicy"), at most kMaxCauseFields.
  std::vector<std::string> fields;
};
inline constexpr size_t kMaxCauseFields = 32;

// Maps an HTTP status to the code callers act on: 400/422 InvalidArgument
// (the object is rejected: permanent), 404 and 410 NotFound, 409
// AlreadyExists (reason AlreadyExists) or FailedPrecondition (Conflict),
// 401/403 FailedPrecondition, 429 Throttled, 5xx Unavailable.
StatusCode StatusCodeForHttp(long http_status, std::string_view reason);

class RestClient {
 public:
  // Fails when the configuration's CA or client certificate cannot be read.
  static Result<std::unique_ptr<RestClient>> Create(
      const ClusterConfig& config,
      std::shared_ptr<CredentialProvider> credentials,
      std::shared_ptr<net::HttpTransport> transport, const Clock& clock,
      RestOptions options = {});

  // Sends the request (rate-limited, authenticated, retried as above) and
  // returns the parsed body of a 2xx response ({} for an empty body). A
  // stop ends waits and a request not yet answered, as Unavailable.
  Result<nlohmann::json> Do(const ApiRequest& request,
                            const std::stop_token& stop = {},
                            ApiError* error = nullptr);

  // Do for a response that is not JSON (a pod's log): the 2xx body as is.
  Result<std::string> DoText(const ApiRequest& request,
                             const std::stop_token& stop = {},
                             ApiError* error = nullptr);

  // Opens a stream (a watch: `path` has watch=1) and hands each
  // newline-delimited JSON object to `on_object` on the transport's I/O
  // thread; `on_object` must be quick and returns false to close the
  // stream. Returns OK when the server ended the stream or `on_object`
  // closed it, Unavailable when it broke, sent a line that is not JSON
  // (the stream is closed there, as client-go's decoder does; the error
  // quotes an excerpt) or `stop` closed it, and the API
  // error (with `error` filled) when the server refused to open it. Opening
  // is rate-limited and retried like Do; a broken stream is not reopened.
  Status Stream(const ApiRequest& request,
                const std::function<bool(nlohmann::json object)>& on_object,
                const std::stop_token& stop = {}, ApiError* error = nullptr);

  // The namespace of the configuration (context, --namespace, in-cluster).
  const std::string& namespace_name() const { return namespace_; }
  // Where the configuration came from, for messages.
  const std::string& source() const { return source_; }
  const Clock& clock() const { return clock_; }

 private:
  RestClient(const ClusterConfig& config,
             std::shared_ptr<CredentialProvider> credentials,
             std::shared_ptr<net::HttpTransport> transport, const Clock& clock,
             RestOptions options, std::shared_ptr<const net::TlsOptions> tls);

  // One exchange: waits for a token, attaches credentials. Transport
  // failures come back in the outcome.
  net::HttpOutcome SendOnce(const ApiRequest& request, long timeout_ms,
                            const std::stop_token& stop,
                            const net::BodyChunkHandler& on_body,
                            Status& setup_error);
  // Sends with the retry policy above; `on_body` set: a stream.
  net::HttpOutcome SendWithRetries(const ApiRequest& request, long timeout_ms,
                                   const std::stop_token& stop,
                                   const net::BodyChunkHandler& on_body,
                                   Status& failure);
  // Logs kube_api_not_answering for a transport failure or a 5xx, at most
  // once per 10 s per reason (timeout, connection, the HTTP status), so
  // that an operator sees an API server that does not answer even while
  // requests are retried; `retry_in` < 0: not retried.
  void WarnIfNotAnswering(const ApiRequest& request,
                          const net::HttpOutcome& out, Millis retry_in);
  bool WaitForToken(const std::stop_token& stop);
  std::shared_ptr<const net::TlsOptions> TlsFor(const Credentials& creds);

  const std::string server_;
  const std::string namespace_;
  const std::string source_;
  const std::shared_ptr<CredentialProvider> credentials_;
  const std::shared_ptr<net::HttpTransport> transport_;
  const Clock& clock_;
  const RestOptions options_;
  const std::shared_ptr<const net::TlsOptions> tls_;

  LogLimiter not_answering_log_{10'000};
  std::mutex mu_;
  TokenBucket bucket_;  // guarded by mu_
  // TLS options with an exec plugin's client certificate, rebuilt when the
  // plugin hands out another one; guarded by mu_.
  std::string exec_cert_pem_;
  std::shared_ptr<const net::TlsOptions> exec_tls_;
};

// At most `max` bytes of `text` on one line (control bytes as spaces, "..."
// when cut): what an error or a log line quotes of a server's odd answer.
std::string Excerpt(std::string_view text, std::size_t max = 100);

// Builds an ApiRequest path with query parameters, escaping their values.
std::string WithQuery(
    std::string path,
    const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_REST_CLIENT_H_
