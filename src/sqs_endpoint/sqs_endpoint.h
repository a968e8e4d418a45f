// SqsEndpoint: an HTTP server speaking the SQS JSON protocol for a
// LocalQueueStore, so that the AWS CLI and SDKs work against the local queue
// with --endpoint-url.
//
// Requests are `POST /` with `X-Amz-Target: AmazonSQS.<Operation>` and
// `Content-Type: application/x-amz-json-1.0` (see sqs_api.h for the
// operations and error mapping). HTTP/1.1 keep-alive is supported; bodies
// over `max_body_bytes` get 413 and the connection is closed.
//
// Slow and idle clients cannot lock others out. A request (headers and body)
// must arrive within `request_timeout_seconds` of its first byte, and a new
// connection must send its first request within that time too; between
// requests a keep-alive connection may stay idle for `idle_timeout_seconds`.
// Connections that miss these deadlines are closed without an answer. At
// most `max_connections` connections are open at once: a client arriving at
// the limit makes the endpoint close the connection that has waited longest
// for a request (never one whose request is being read or served); if every
// connection is busy, new clients wait in the listen backlog. Requests being
// served have no deadline, so 20 s long polls work.
//
// With `require_auth`, every request must carry a valid SigV4 Authorization
// header signed with one of `credentials` (access key id → secret) for the
// configured region and service "sqs"; otherwise signatures are not checked,
// and each request is served in the region it was signed for (unsigned: the
// configured region), see sqs_api.h.
//
// Every error response is logged as one JSON line (event "sqs_error") with
// the operation, code and message; the server keeps serving.
//
// Threading: `io_threads` threads run the network I/O (Boost.Asio); each
// request's store work runs on a worker pool with up to `max_connections`
// threads, so a long-poll ReceiveMessage blocks only its own connection, and
// the response is posted back to the connection's strand.
//
// Thread-safety: Start, port, url, InFlightRequests and Stop may be called
// from any thread. Stop (and the destructor) close the listener, end waiting
// long polls with an empty receive (as SQS does at the end of a wait), let
// the requests being served finish and write their answers, then close
// every connection: about as long as the slowest store call, not 20 s.
#ifndef CRUNCHER_SQS_ENDPOINT_SQS_ENDPOINT_H_
#define CRUNCHER_SQS_ENDPOINT_SQS_ENDPOINT_H_

#include <map>
#include <memory>
#include <string>

#include "core/status.h"
#include "local/queue_store.h"

namespace cruncher::sqs {

struct SqsEndpointOptions {
  std::string host = "127.0.0.1";
  int port = 9324;  // 0: pick a free port; read it with port()
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
  bool require_auth = false;
  std::map<std::string, std::string> credentials;  // access key id → secret
  int io_threads = 2;
  int max_connections = 256;
  size_t max_body_bytes = 2 * 1024 * 1024;
  int request_timeout_seconds = 10;
  int idle_timeout_seconds = 120;
};

class SqsEndpoint {
 public:
  // Binds host:port and starts serving. InvalidArgument for a bad host or
  // options (require_auth without credentials); Unavailable if the address
  // cannot be bound (in use, not local). `store` must outlive the endpoint.
  static Result<std::unique_ptr<SqsEndpoint>> Start(
      local::LocalQueueStore& store, SqsEndpointOptions options);
  ~SqsEndpoint();  // Stop()s
  SqsEndpoint(const SqsEndpoint&) = delete;
  SqsEndpoint& operator=(const SqsEndpoint&) = delete;

  // The bound port (the chosen one when options.port was 0).
  int port() const;
  // "http://HOST:PORT", the --endpoint-url for clients.
  std::string url() const;

  // Requests handed to the store and not yet answered (for tests and
  // metrics).
  int InFlightRequests() const;

  // Stops accepting, ends long polls, answers the requests in flight and
  // closes every connection. Idempotent.
  void Stop();

 private:
  class Impl;
  explicit SqsEndpoint(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace cruncher::sqs

#endif  // CRUNCHER_SQS_ENDPOINT_SQS_ENDPOINT_H_
