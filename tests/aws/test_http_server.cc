#include "test_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace cruncher::aws::testing {
namespace {

// Waits up to 100 ms for `fd` to become readable.
bool Readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 100) > 0;
}

void SendAll(int fd, const std::string& data) {
  std::size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

TestHttpReply TestHttpReply::Json(int status, std::string body) {
  TestHttpReply r;
  r.status = status;
  r.headers = {{"Content-Type", "application/x-amz-json-1.0"}};
  r.body = std::move(body);
  return r;
}

TestHttpServer::TestHttpServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (listen_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
          0 ||
      ::listen(listen_fd_, 64) != 0) {
    std::perror("TestHttpServer: cannot listen on 127.0.0.1");
    std::abort();
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

TestHttpServer::~TestHttpServer() {
  stop_ = true;
  acceptor_.join();
  ::close(listen_fd_);
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& t : workers_) t.join();
}

void TestHttpServer::AcceptLoop() {
  while (!stop_) {
    if (!Readable(listen_fd_)) continue;
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) continue;
    ++connections_;
    std::lock_guard<std::mutex> lock(mu_);
    workers_.emplace_back([this, fd] { Serve(fd); });
  }
}

void TestHttpServer::Serve(int fd) {
  std::string buffer;
  auto read_more = [&]() -> bool {
    while (!stop_) {
      if (!Readable(fd)) continue;
      char chunk[16384];
      ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<std::size_t>(n));
      return true;
    }
    return false;
  };
  while (!stop_) {
    std::size_t header_end;
    while ((header_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      if (!read_more()) {
        ::close(fd);
        return;
      }
    }
    TestHttpRequest request;
    std::string head = buffer.substr(0, header_end);
    std::size_t line_end = head.find("\r\n");
    std::string request_line = head.substr(0, line_end);
    std::size_t sp1 = request_line.find(' ');
    std::size_t sp2 = request_line.rfind(' ');
    request.method = request_line.substr(0, sp1);
    request.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::size_t pos =
        line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      std::size_t eol = head.find("\r\n", pos);
      if (eol == std::string::npos) eol = head.size();
      std::string line = head.substr(pos, eol - pos);
      std::size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        std::transform(
            name.begin(), name.end(), name.begin(),
            [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        std::size_t v = line.find_first_not_of(' ', colon + 1);
        request.headers[name] = v == std::string::npos ? "" : line.substr(v);
      }
      pos = eol + 2;
    }
    std::size_t length = 0;
    if (auto it = request.headers.find("content-length");
        it != request.headers.end()) {
      length = std::stoul(it->second);
    }
    buffer.erase(0, header_end + 4);
    while (buffer.size() < length) {
      if (!read_more()) {
        ::close(fd);
        return;
      }
    }
    request.body = buffer.substr(0, length);
    buffer.erase(0, length);
    ++requests_;

    TestHttpReply reply = handler_(request);
    for (int waited = 0; waited < reply.delay_ms && !stop_; waited += 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (reply.action == TestHttpReply::Action::kReset) {
      linger l{1, 0};  // close with RST
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      ::close(fd);
      return;
    }
    if (reply.action == TestHttpReply::Action::kClose) {
      ::close(fd);
      return;
    }
    std::string out = "HTTP/1.1 " + std::to_string(reply.status) + " " +
                      Reason(reply.status) + "\r\n";
    for (const auto& [name, value] : reply.headers) {
      out += name + ": " + value + "\r\n";
    }
    out += "Content-Length: " + std::to_string(reply.body.size()) + "\r\n\r\n";
    out += reply.body;
    SendAll(fd, out);
  }
  ::close(fd);
}

}  // namespace cruncher::aws::testing
