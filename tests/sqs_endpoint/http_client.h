// A minimal blocking HTTP client for the endpoint tests: one request per
// connection, with socket timeouts so that a server that never answers fails
// the test instead of hanging it.
#ifndef CRUNCHER_TESTS_SQS_ENDPOINT_HTTP_CLIENT_H_
#define CRUNCHER_TESTS_SQS_ENDPOINT_HTTP_CLIENT_H_

#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <string>

namespace cruncher::sqs::testing {

struct HttpReply {
  int status = 0;  // 0: no answer (see error)
  std::string body;
  std::string query_error;  // the x-amzn-query-error header
  std::string error;        // transport error, if no answer
};

// Connects to 127.0.0.1:`port`, with reads and writes that fail after
// `timeout_seconds`.
inline boost::asio::ip::tcp::socket Connect(boost::asio::io_context& ioc,
                                            int port,
                                            int timeout_seconds = 30) {
  boost::asio::ip::tcp::socket socket(ioc);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"),
                  static_cast<unsigned short>(port)});
  timeval tv{timeout_seconds, 0};
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return socket;
}

// POSTs `body` as AmazonSQS.`operation` in the JSON protocol.
inline HttpReply PostSqs(int port, const std::string& operation,
                         const std::string& body, int timeout_seconds = 60) {
  namespace http = boost::beast::http;
  HttpReply reply;
  try {
    boost::asio::io_context ioc;
    auto socket = Connect(ioc, port, timeout_seconds);
    http::request<http::string_body> req{http::verb::post, "/", 11};
    req.set(http::field::host, "127.0.0.1:" + std::to_string(port));
    req.set(http::field::content_type, "application/x-amz-json-1.0");
    req.set("X-Amz-Target", "AmazonSQS." + operation);
    req.keep_alive(false);
    req.body() = body;
    req.prepare_payload();
    http::write(socket, req);
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    http::read(socket, buffer, parser);
    const auto& res = parser.get();
    reply.status = static_cast<int>(res.result_int());
    reply.body = res.body();
    reply.query_error = std::string(res["x-amzn-query-error"]);
  } catch (const std::exception& e) {
    reply.error = e.what();
  }
  return reply;
}

}  // namespace cruncher::sqs::testing

#endif  // CRUNCHER_TESTS_SQS_ENDPOINT_HTTP_CLIENT_H_
