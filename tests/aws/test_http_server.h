// TestHttpServer: a small HTTP/1.1 server on 127.0.0.1 for tests. Each
// request is handed to a handler that decides the reply: a response (after
// an optional delay), a connection reset, or a close without any response.
// Connections are kept alive between requests, as a real endpoint would.
//
// Thread-safety: the handler runs on the connection threads and may be
// called concurrently; counters are atomic. The destructor stops the server
// and joins its threads.
#ifndef CRUNCHER_TESTS_AWS_TEST_HTTP_SERVER_H_
#define CRUNCHER_TESTS_AWS_TEST_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cruncher::aws::testing {

struct TestHttpRequest {
  std::string method;
  std::string target;                          // path and query
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

struct TestHttpReply {
  enum class Action { kRespond, kReset, kClose };
  Action action = Action::kRespond;
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int delay_ms = 0;  // before replying (or resetting)

  static TestHttpReply Json(int status, std::string body);
  static TestHttpReply Reset() {
    TestHttpReply r;
    r.action = Action::kReset;
    return r;
  }
};

class TestHttpServer {
 public:
  using Handler = std::function<TestHttpReply(const TestHttpRequest&)>;

  // Listens on an ephemeral loopback port; aborts the test binary if it
  // cannot (the environment is broken, not the code under test).
  explicit TestHttpServer(Handler handler);
  ~TestHttpServer();
  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_);
  }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }

 private:
  void AcceptLoop();
  void Serve(int fd);

  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::vector<std::thread> workers_;
};

}  // namespace cruncher::aws::testing

#endif  // CRUNCHER_TESTS_AWS_TEST_HTTP_SERVER_H_
