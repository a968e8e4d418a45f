// FakeHttpTransport: a net::HttpTransport whose answers a test scripts.
//
// Each Send is recorded and answered by the handler (unless its stop token
// is already stopped: then, as with the real transport, nothing is sent), which
// gets the request and its index (from 0) and returns the outcome; the helpers
// below build the usual ones: a reply, a connection failure, a streamed 2xx
// body fed to on_body in given pieces (as libcurl hands them over), and a
// request that hangs until its stop token is stopped (an unreachable server).
//
// Users link cruncher_net (cruncher_kube and cruncher_aws do).
//
// Thread-safety: Send may be called from any thread; the handler runs on the
// caller's thread, so it must guard state it shares with the test.
#ifndef CRUNCHER_TESTS_UNIT_FAKES_FAKE_HTTP_TRANSPORT_H_
#define CRUNCHER_TESTS_UNIT_FAKES_FAKE_HTTP_TRANSPORT_H_

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <stop_token>
#include <string>
#include <utility>
#include <vector>

#include "net/http_transport.h"

namespace cruncher::testing {

class FakeHttpTransport final : public net::HttpTransport {
 public:
  using Handler =
      std::function<net::HttpOutcome(const net::HttpRequest& request, int n)>;

  explicit FakeHttpTransport(Handler handler) : handler_(std::move(handler)) {}

  net::HttpOutcome Send(const net::HttpRequest& request) override {
    if (request.stop.stop_requested()) {
      // As the real transport: never sent, so neither recorded nor answered.
      net::HttpOutcome out;
      out.stopped = true;
      out.status = Unavailable(request.method + " " + request.url +
                               ": stopped before it was sent");
      return out;
    }
    int n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = static_cast<int>(requests_.size());
      requests_.push_back(request);
      ++in_flight_;
    }
    cv_.notify_all();
    net::HttpOutcome out = handler_(request, n);
    {
      std::lock_guard<std::mutex> lock(mu_);
      --in_flight_;
    }
    cv_.notify_all();
    return out;
  }

  std::vector<net::HttpRequest> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  int count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(requests_.size());
  }
  // Requests being answered now (a handler that hangs keeps one here).
  int in_flight() const {
    std::lock_guard<std::mutex> lock(mu_);
    return in_flight_;
  }
  // Waits (real time, at most 10 s) until `pred(count(), in_flight())`;
  // returns whether it became true.
  bool WaitFor(const std::function<bool(int count, int in_flight)>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      return pred(static_cast<int>(requests_.size()), in_flight_);
    });
  }

  static net::HttpOutcome Reply(
      long status, std::string body,
      std::map<std::string, std::string> headers = {}) {
    net::HttpOutcome out;
    out.response.status = status;
    out.response.body = std::move(body);
    out.response.headers = std::move(headers);
    return out;
  }

  // A failure to exchange the request (reset, refused), before any answer.
  static net::HttpOutcome ConnectionFailure(const net::HttpRequest& request,
                                            bool timed_out = false) {
    net::HttpOutcome out;
    out.status = Unavailable(request.method + " " + request.url +
                             ": Connection reset by peer");
    out.timed_out = timed_out;
    return out;
  }

  // A 2xx answer whose body arrives in `pieces`, handed to on_body like the
  // real transport does; a handler returning false ends it as stopped.
  static net::HttpOutcome Streamed(const net::HttpRequest& request,
                                   const std::vector<std::string>& pieces,
                                   long status = 200) {
    net::HttpOutcome out;
    out.response.status = status;
    for (const std::string& piece : pieces) {
      if (request.on_body) {
        if (!request.on_body(piece)) {
          out.stopped = true;
          out.status = Unavailable(request.method + " " + request.url +
                                   ": stopped by the body handler");
          return out;
        }
      } else {
        out.response.body += piece;
      }
    }
    return out;
  }

  // No answer until the request's stop token is stopped: then ends as
  // stopped, as the real transport does within about a second.
  static net::HttpOutcome Hang(const net::HttpRequest& request) {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, request.stop, [] { return false; });
    net::HttpOutcome out;
    out.stopped = true;
    out.status = Unavailable(request.method + " " + request.url + ": stopped");
    return out;
  }

 private:
  const Handler handler_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<net::HttpRequest> requests_;
  int in_flight_ = 0;
};

// The value of the request's header `name` (as sent), or "".
inline std::string RequestHeader(const net::HttpRequest& request,
                                 const std::string& name) {
  for (const auto& [k, v] : request.headers) {
    if (k == name) return v;
  }
  return "";
}

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_FAKES_FAKE_HTTP_TRANSPORT_H_
