// HttpTransport: sends one HTTP request and returns the response, whatever
// its status code. It is the seam between the AWS clients (signing, retries,
// error mapping) and the network: the real implementation is libcurl with
// connection reuse; tests substitute a fake that scripts responses and
// failures.
//
// A transport never retries and never interprets HTTP statuses: a 503 is a
// successful exchange. Only failures to exchange a request (DNS, connect,
// reset, timeout, TLS) are errors, and a stop requested through the
// request's stop token while no response has begun to arrive (a long poll
// being abandoned), which ends the exchange within about a second.
//
// Thread-safety: implementations are safe for concurrent use.
#ifndef CRUNCHER_AWS_HTTP_TRANSPORT_H_
#define CRUNCHER_AWS_HTTP_TRANSPORT_H_

#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace cruncher::aws {

struct HttpRequest {
  std::string method = "POST";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  long timeout_ms = 30000;         // whole exchange
  long connect_timeout_ms = 5000;  // TCP (+TLS) connect
  std::stop_token stop;            // abandons the exchange (see above)
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  // The header's value, or "" when absent. `lower_name` is lower-case.
  std::string Header(const std::string& lower_name) const;
};

// The result of one exchange. `status` is OK whenever a response arrived;
// otherwise it is Unavailable, names the URL and the transport error, and
// `timed_out` tells a timeout apart from other connection failures (retry
// budgets charge timeouts more), `stopped` an exchange abandoned because the
// request's stop was requested (not a failure of the server).
struct HttpOutcome {
  Status status;
  bool timed_out = false;
  bool stopped = false;
  HttpResponse response;
};

class HttpTransport {
 public:
  virtual ~HttpTransport() = default;
  virtual HttpOutcome Send(const HttpRequest& request) = 0;
};

// libcurl, HTTP/1.1 with keep-alive. Easy handles are pooled: a call borrows
// one (creating it if the pool is empty) and returns it afterwards, so
// connections are reused across calls and threads never share a handle.
class CurlHttpTransport final : public HttpTransport {
 public:
  CurlHttpTransport();
  ~CurlHttpTransport() override;
  CurlHttpTransport(const CurlHttpTransport&) = delete;
  CurlHttpTransport& operator=(const CurlHttpTransport&) = delete;

  HttpOutcome Send(const HttpRequest& request) override;

 private:
  void* Borrow();
  void Return(void* handle);

  std::mutex mu_;
  std::vector<void*> idle_;  // CURL* handles not in use
};

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_HTTP_TRANSPORT_H_
