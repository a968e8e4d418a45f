// CurlHttpTransport against real sockets: methods and bodies, streamed
// bodies, body limits, stops before and during a response, and many callers
// sharing the I/O thread.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "net/http_transport.h"
#include "test_http_server.h"

namespace cruncher::net {
namespace {

using aws::testing::TestHttpReply;
using aws::testing::TestHttpRequest;
using aws::testing::TestHttpServer;
using Clock = std::chrono::steady_clock;

TestHttpReply Echo(const TestHttpRequest& r) {
  TestHttpReply reply;
  reply.status = r.target == "/missing" ? 404 : 200;
  reply.headers = {{"X-Echo-Method", r.method}};
  reply.body = r.method + " " + r.target + " " + r.body;
  return reply;
}

TEST(CurlHttpTransport, SendsEachMethodWithItsBody) {
  TestHttpServer server(Echo);
  CurlHttpTransport transport;
  for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
    HttpRequest request;
    request.method = method;
    request.url = server.url() + "/p?q=1";
    if (std::string(method) != "GET") request.body = "{\"a\":1}";
    HttpOutcome out = transport.Send(request);
    ASSERT_TRUE(out.status.ok()) << out.status.ToString();
    EXPECT_EQ(out.response.status, 200);
    EXPECT_EQ(out.response.Header("x-echo-method"), method);
    EXPECT_EQ(out.response.body,
              std::string(method) + " /p?q=1 " + request.body);
  }
  // One connection served all five: keep-alive through the shared loop.
  EXPECT_EQ(server.connections(), 1);
}

TEST(CurlHttpTransport, StreamsA2xxBodyAndCollectsAnErrorBody) {
  TestHttpServer server(Echo);
  CurlHttpTransport transport;
  std::string streamed;
  HttpRequest request;
  request.method = "GET";
  request.url = server.url() + "/watch";
  request.on_body = [&](std::string_view chunk) {
    streamed.append(chunk);
    return true;
  };
  HttpOutcome out = transport.Send(request);
  ASSERT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(streamed, "GET /watch ");
  EXPECT_EQ(out.response.body, "");

  streamed.clear();
  request.url = server.url() + "/missing";
  out = transport.Send(request);
  ASSERT_TRUE(out.status.ok());
  EXPECT_EQ(out.response.status, 404);
  EXPECT_EQ(out.response.body, "GET /missing ");
  EXPECT_EQ(streamed, "");
}

TEST(CurlHttpTransport, AHandlerThatReturnsFalseEndsTheExchangeAsStopped) {
  TestHttpServer server(Echo);
  CurlHttpTransport transport;
  HttpRequest request;
  request.method = "GET";
  request.url = server.url() + "/x";
  request.on_body = [](std::string_view) { return false; };
  HttpOutcome out = transport.Send(request);
  EXPECT_FALSE(out.status.ok());
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(out.response.status, 200);
}

TEST(CurlHttpTransport, ABodyOverTheLimitIsAnErrorNotAnAllocation) {
  TestHttpServer server([](const TestHttpRequest&) {
    return TestHttpReply::Json(200, std::string(100000, 'x'));
  });
  CurlHttpTransport transport;
  HttpRequest request;
  request.method = "GET";
  request.url = server.url() + "/big";
  request.max_body_bytes = 1000;
  HttpOutcome out = transport.Send(request);
  ASSERT_FALSE(out.status.ok());
  EXPECT_NE(out.status.message().find("over 1000 bytes"), std::string::npos)
      << out.status.ToString();
  EXPECT_FALSE(out.stopped);
  EXPECT_EQ(out.response.status, 200);  // an answer, not a lost connection
  EXPECT_LE(out.response.body.size(), 1000u);
}

TEST(CurlHttpTransport, AStopEndsAWaitForTheResponseWithinASecond) {
  TestHttpServer server([](const TestHttpRequest&) {
    TestHttpReply r = TestHttpReply::Json(200, "{}");
    r.delay_ms = 10000;
    return r;
  });
  CurlHttpTransport transport;
  std::stop_source stop;
  HttpRequest request;
  request.url = server.url() + "/slow";
  request.stop = stop.get_token();
  std::jthread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop.request_stop();
  });
  const auto t0 = Clock::now();
  HttpOutcome out = transport.Send(request);
  const auto took = Clock::now() - t0;
  EXPECT_TRUE(out.stopped);
  EXPECT_FALSE(out.status.ok());
  EXPECT_LT(took, std::chrono::milliseconds(1500));
}

TEST(CurlHttpTransport, ARequestStoppedBeforeItIsSentIsNeverSent) {
  TestHttpServer server(Echo);
  CurlHttpTransport transport;
  std::stop_source stop;
  stop.request_stop();
  HttpRequest request;
  request.url = server.url() + "/x";
  request.stop = stop.get_token();
  HttpOutcome out = transport.Send(request);
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(server.requests(), 0);
}

// A server that answers one request with a chunked 200, sends one chunk and
// then holds the stream open, as an API server does with a watch.
class HeldStreamServer {
 public:
  HeldStreamServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(listen(fd_, 4), 0);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      int conn = accept(fd_, nullptr, nullptr);
      if (conn < 0) return;
      char buf[4096];
      (void)!read(conn, buf, sizeof buf);
      const std::string head =
          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
          "Transfer-Encoding: chunked\r\n\r\n";
      const std::string chunk = "{\"type\":\"ADDED\"}\n";
      char size[16];
      snprintf(size, sizeof size, "%zx\r\n", chunk.size());
      const std::string out = head + size + chunk + "\r\n";
      (void)!write(conn, out.data(), out.size());
      // Hold the stream until the client goes away.
      while (read(conn, buf, sizeof buf) > 0) {
      }
      close(conn);
    });
  }
  ~HeldStreamServer() {
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/watch";
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

TEST(CurlHttpTransport, AStopEndsAStreamMidBody) {
  HeldStreamServer server;
  CurlHttpTransport transport;
  std::stop_source stop;
  std::mutex mu;
  std::string streamed;
  HttpRequest request;
  request.method = "GET";
  request.url = server.url();
  request.timeout_ms = 0;
  request.stop = stop.get_token();
  request.on_body = [&](std::string_view chunk) {
    std::lock_guard<std::mutex> lock(mu);
    streamed.append(chunk);
    stop.request_stop();  // seen the first event: close the watch
    return true;
  };
  const auto t0 = Clock::now();
  HttpOutcome out = transport.Send(request);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
  EXPECT_TRUE(out.stopped);
  EXPECT_EQ(out.response.status, 200);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(streamed, "{\"type\":\"ADDED\"}\n");
}

TEST(CurlHttpTransport, ManyThreadsShareTheLoop) {
  TestHttpServer server(Echo);
  CurlHttpTransport transport;
  std::atomic<int> ok{0};
  std::vector<std::jthread> threads;
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 20; ++i) {
        HttpRequest request;
        request.url = server.url() + "/t" + std::to_string(t);
        request.body = std::to_string(i);
        HttpOutcome out = transport.Send(request);
        if (out.status.ok() &&
            out.response.body ==
                "POST /t" + std::to_string(t) + " " + std::to_string(i)) {
          ++ok;
        }
      }
    });
  }
  threads.clear();
  // Every caller got its own answer. (How many connections libcurl keeps
  // open is its cache's policy, not asserted: under load it varies.)
  EXPECT_EQ(ok.load(), 16 * 20);
}

TEST(CurlHttpTransport, AConnectionRefusedIsUnavailableAndNamesTheUrl) {
  int port = 0;
  {
    TestHttpServer server(Echo);
    port = server.port();
  }
  CurlHttpTransport transport;
  HttpRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/gone";
  HttpOutcome out = transport.Send(request);
  ASSERT_FALSE(out.status.ok());
  EXPECT_EQ(out.status.code(), StatusCode::kUnavailable);
  EXPECT_NE(out.status.message().find("/gone"), std::string::npos);
  // The cause, not only libcurl's class of error.
  EXPECT_NE(out.status.message().find("Connection refused"), std::string::npos)
      << out.status.message();
  EXPECT_NE(out.status.message().find("(curl error 7: "), std::string::npos)
      << out.status.message();
  EXPECT_FALSE(out.stopped);
}

}  // namespace
}  // namespace cruncher::net
