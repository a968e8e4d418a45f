// HttpTransport: sends one HTTP request and returns the response, whatever
// its status code. It is the seam between the API clients (AWS: signing,
// retries, error mapping; Kubernetes: authentication, rate limits, watches)
// and the network: the real implementation is libcurl; tests substitute a
// fake that scripts responses and failures.
//
// A transport never retries and never interprets HTTP statuses: a 503 is a
// successful exchange. Only failures to exchange a request (DNS, connect,
// reset, timeout, TLS) are errors, and a stop requested through the
// request's stop token, which ends the exchange within about a second: while
// no response has begun to arrive (a long poll being abandoned), or at any
// time for a streamed body (a watch being closed).
//
// Thread-safety: implementations are safe for concurrent use.
#ifndef CRUNCHER_NET_HTTP_TRANSPORT_H_
#define CRUNCHER_NET_HTTP_TRANSPORT_H_

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

namespace cruncher::net {

// How to verify the server and who we are to it, for https URLs. PEM bytes
// are given inline (`*_pem`) or as a file path; inline wins when both are
// set. Connections are only reused between requests with equal options.
struct TlsOptions {
  std::string ca_file;  // CA bundle; neither set: the system's bundle
  std::string ca_pem;
  std::string client_cert_file;
  std::string client_cert_pem;
  std::string client_key_file;
  std::string client_key_pem;
  // The name the server's certificate must carry, when it differs from the
  // URL's host (kubeconfig's tls-server-name).
  std::string server_name;
  bool insecure_skip_verify = false;
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;  // empty when a 2xx body was streamed to on_body

  // The header's value, or "" when absent. `lower_name` is lower-case.
  std::string Header(const std::string& lower_name) const;
};

// Receives a 2xx response's body as it arrives, piece by piece, on the
// transport's I/O thread: it must not block (hand work to another thread).
// Returning false abandons the exchange (the outcome is `stopped`).
using BodyChunkHandler = std::function<bool(std::string_view chunk)>;

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  long timeout_ms = 30000;                // whole exchange; 0: none (a watch)
  long connect_timeout_ms = 5000;         // TCP (+TLS) connect
  std::stop_token stop;                   // abandons the exchange (see above)
  std::shared_ptr<const TlsOptions> tls;  // null: defaults
  // Set: a 2xx body goes here instead of into HttpResponse::body, and a
  // stop ends the exchange even mid-body. Other statuses' bodies (an API
  // error) are still collected into the response.
  BodyChunkHandler on_body;
  // A collected body larger than this ends the exchange with an error, so a
  // broken or hostile server cannot exhaust memory.
  std::size_t max_body_bytes = std::size_t{256} << 20;
};

// The result of one exchange. `status` is OK whenever a whole response
// arrived; otherwise it is Unavailable, names the URL and the transport
// error, and `timed_out` tells a timeout apart from other connection
// failures (retry budgets charge timeouts more), `stopped` an exchange
// abandoned because of a stop or on_body (not a failure of the server),
// `permanent` a failure that sending the same request again cannot fix:
// the server's certificate does not verify, a CA or client certificate
// file cannot be used, a malformed URL (clients do not retry these).
// `response.status` is kept when the failure came after the headers (a
// watch stream cut mid-body).
struct HttpOutcome {
  Status status;
  bool timed_out = false;
  bool stopped = false;
  bool permanent = false;
  HttpResponse response;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual HttpOutcome Send(const HttpRequest& request) = 0;
};

// libcurl's multi interface driven by one I/O thread: connections are kept
// alive and shared by all callers, and over https HTTP/2 is negotiated when
// the server offers it, so concurrent requests to one server share one
// connection as multiplexed streams (as client-go does). Send blocks the
// calling thread until its exchange ends.
class CurlHttpTransport final : public HttpTransport {
 public:
  CurlHttpTransport();
  ~CurlHttpTransport() override;  // ends exchanges still open, as stopped
  CurlHttpTransport(const CurlHttpTransport&) = delete;
  CurlHttpTransport& operator=(const CurlHttpTransport&) = delete;

  HttpOutcome Send(const HttpRequest& request) override;

  class Loop;  // the I/O thread and its multi handle (curl_transport.cc)

 private:
  std::unique_ptr<Loop> loop_;
};

}  // namespace cruncher::net

#endif  // CRUNCHER_NET_HTTP_TRANSPORT_H_
