#include "sqs_endpoint/sqs_endpoint.h"

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <stop_token>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/random_id.h"
#include "sqs_endpoint/sigv4_verifier.h"
#include "sqs_endpoint/sqs_api.h"
#include "sqs_endpoint/worker_pool.h"

namespace cruncher::sqs {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::string_view kTargetPrefix = "AmazonSQS.";
constexpr std::string_view kJsonContentType = "application/x-amz-json-1.0";

}  // namespace

// Milliseconds on a monotonic clock, for ordering idle connections.
Millis SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class SqsEndpoint::Impl {
 public:
  class Session;

  Impl(local::LocalQueueStore& store, SqsEndpointOptions options)
      : options_(std::move(options)),
        api_(store, SqsApiOptions{options_.region, options_.account_id}),
        verifier_(options_.credentials, options_.region, "sqs"),
        pool_(options_.max_connections),
        work_(net::make_work_guard(ioc_)),
        acceptor_(net::make_strand(ioc_)) {}

  ~Impl() { Stop(); }

  Status Listen() {
    beast::error_code ec;
    auto address = net::ip::make_address(options_.host, ec);
    if (ec) {
      return InvalidArgument("SQS endpoint host \"" + options_.host +
                             "\" is not an IP address: " + ec.message());
    }
    if (options_.port < 0 || options_.port > 65535) {
      return InvalidArgument("SQS endpoint port " +
                             std::to_string(options_.port) +
                             " is out of range");
    }
    tcp::endpoint endpoint(address, static_cast<unsigned short>(options_.port));
    const std::string where =
        options_.host + ":" + std::to_string(options_.port);
    if (acceptor_.open(endpoint.protocol(), ec); ec) {
      return Unavailable("SQS endpoint: cannot open socket for " + where +
                         ": " + ec.message());
    }
    if (acceptor_.set_option(net::socket_base::reuse_address(true), ec); ec) {
      return Unavailable("SQS endpoint: cannot set SO_REUSEADDR: " +
                         ec.message());
    }
    if (acceptor_.bind(endpoint, ec); ec) {
      return Unavailable("SQS endpoint: cannot bind " + where + ": " +
                         ec.message());
    }
    if (acceptor_.listen(net::socket_base::max_listen_connections, ec); ec) {
      return Unavailable("SQS endpoint: cannot listen on " + where + ": " +
                         ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    net::post(acceptor_.get_executor(), [this] { DoAccept(); });
    for (int i = 0; i < std::max(1, options_.io_threads); ++i) {
      io_threads_.emplace_back([this] { ioc_.run(); });
    }
    Log(LogLevel::kInfo, "sqs_endpoint_started",
        {{"url", Url()}, {"require_auth", options_.require_auth}});
    return Status::Ok();
  }

  int port() const { return port_; }
  std::string Url() const {
    return "http://" + options_.host + ":" + std::to_string(port_);
  }
  int InFlightRequests() const { return in_flight_.load(); }

  void Stop();

 private:
  void DoAccept();
  // At the connection limit: the session that has waited longest for a
  // request, to be evicted by the caller after releasing mu_; null if every
  // session is reading or serving one.
  std::shared_ptr<Session> LongestIdleLocked();
  void SessionWaiting();
  void SessionClosed(Session* session);

  const SqsEndpointOptions options_;
  SqsApi api_;
  const SigV4Verifier verifier_;
  WorkerPool pool_;
  // Ends the long polls when the endpoint stops.
  std::stop_source stop_source_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> in_flight_{0};
  std::mutex mu_;  // guards the fields below
  std::condition_variable sessions_changed_;
  std::map<Session*, std::weak_ptr<Session>> sessions_;
  bool accept_paused_ = false;
  bool stopped_ = false;
  int port_ = 0;
  std::vector<std::thread> io_threads_;
  // Destroyed first (declared last): handlers still queued hold sessions,
  // whose destructors call SessionClosed on the fields above.
  net::io_context ioc_;
  net::executor_work_guard<net::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
};

// One client connection: reads requests one after another (keep-alive),
// hands each to the worker pool, and writes the response on its strand.
class SqsEndpoint::Impl::Session
    : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& impl, tcp::socket socket)
      : impl_(impl), stream_(std::move(socket)) {
    beast::error_code ec;
    auto remote = stream_.socket().remote_endpoint(ec);
    if (!ec)
      peer_ =
          remote.address().to_string() + ":" + std::to_string(remote.port());
  }
  ~Session() { impl_.SessionClosed(this); }

  void Start() {
    net::dispatch(stream_.get_executor(),
                  [self = shared_from_this()] { self->DoRead(); });
  }

  // When this session started waiting for a request, or 0 while it reads or
  // serves one (or was already chosen for eviction). Read under Impl::mu_.
  Millis waiting_since() const { return waiting_since_.load(); }

  // Closes the socket from the session's strand unless a request is being
  // served (Stop lets those answer first); with `force`, in any case.
  // Pending operations fail.
  void Close(bool force) {
    net::post(stream_.get_executor(), [self = shared_from_this(), force] {
      if (!force && self->phase_ == Phase::kServing) return;
      self->CloseSocket();
    });
  }

  // Closes the connection if it is still waiting for a request.
  void Evict() {
    waiting_since_ = 0;  // not chosen twice
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->phase_ != Phase::kWaiting) return;
      Log(LogLevel::kInfo, "sqs_connection_evicted",
          {{"peer", self->peer_},
           {"reason", "connection limit reached; idle the longest"}});
      self->CloseSocket();
    });
  }

 private:
  enum class Phase {
    kWaiting,  // for the first byte of a request
    kReading,  // a request, which must arrive within request_timeout
    kServing,  // handed to the store or writing the answer
    kClosing,  // lingering after an answer we will not read past
  };

  void DoRead() {
    if (impl_.stopping_) return CloseSocket();
    phase_ = Phase::kWaiting;
    if (buffer_.size() > 0) return ReadRequest();  // pipelined
    waiting_since_ = SteadyMillis();
    impl_.SessionWaiting();
    // A new connection gets as long for its first request as a request gets
    // to arrive; a kept-alive one may idle longer between requests.
    stream_.expires_after(std::chrono::seconds(
        served_ == 0 ? impl_.options_.request_timeout_seconds
                     : impl_.options_.idle_timeout_seconds));
    stream_.async_read_some(
        buffer_.prepare(4096),
        [self = shared_from_this()](beast::error_code ec, size_t n) {
          self->waiting_since_ = 0;
          if (ec) return;  // idle timeout, closed, evicted, or stopping
          self->buffer_.commit(n);
          self->ReadRequest();
        });
  }

  void ReadRequest() {
    if (impl_.stopping_) return CloseSocket();
    phase_ = Phase::kReading;
    parser_.emplace();
    parser_->body_limit(impl_.options_.max_body_bytes);
    stream_.expires_after(
        std::chrono::seconds(impl_.options_.request_timeout_seconds));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnRead(ec);
                     });
  }

  void OnRead(beast::error_code ec) {
    static const auto& kHttpErrors =
        http::make_error_code(http::error::bad_version).category();
    phase_ = Phase::kServing;
    if (ec == http::error::end_of_stream) return Shutdown();
    if (ec == http::error::body_limit) {
      // A batch of messages over SQS's limit is refused as SQS refuses it,
      // with the error clients catch for batches.
      const auto& header = parser_->get();
      const bool batch = header["X-Amz-Target"] == "AmazonSQS.SendMessageBatch";
      const uint64_t length =
          parser_->content_length().value_or(impl_.options_.max_body_bytes);
      return Respond(
          SqsApi::ErrorResponse(
              batch ? BatchRequestTooLong(static_cast<size_t>(length))
                    : RequestTooLargeError(
                          "Request body is larger than the limit of " +
                          std::to_string(impl_.options_.max_body_bytes) +
                          " bytes.")),
          "", /*close=*/true, 11);
    }
    if (ec && ec.category() == kHttpErrors &&
        ec != http::error::partial_message) {
      return Respond(SqsApi::ErrorResponse(SerializationError(
                         "Malformed HTTP request: " + ec.message())),
                     "", /*close=*/true, 11);
    }
    if (ec == beast::error::timeout) {
      Log(LogLevel::kInfo, "sqs_request_timeout",
          {{"peer", peer_},
           {"timeout_seconds", impl_.options_.request_timeout_seconds}});
    }
    if (ec) return;  // timeout, reset or closed by Stop: nothing to answer
    stream_.expires_never();
    ++served_;
    Handle(parser_->release());
  }

  void Handle(http::request<http::string_body> req) {
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    std::string target(req["X-Amz-Target"]);
    std::string op = target.rfind(kTargetPrefix, 0) == 0
                         ? target.substr(kTargetPrefix.size())
                         : "";
    auto reject = [&](const SqsError& e) {
      Respond(SqsApi::ErrorResponse(e), op.empty() ? target : op, !keep_alive,
              version);
    };
    if (req.method() != http::verb::post) {
      return reject(UnknownOperationError(
          "The SQS JSON protocol takes POST requests; got " +
          std::string(req.method_string())));
    }
    const std::string content_type(req[http::field::content_type]);
    if (content_type.compare(0, kJsonContentType.size(), kJsonContentType) !=
        0) {
      return reject(UnknownOperationError(
          "Content-Type \"" + std::string(content_type) +
          "\" is not supported: this endpoint speaks the SQS JSON protocol (" +
          std::string(kJsonContentType) + ") only"));
    }
    if (op.empty()) {
      return reject(UnknownOperationError(
          target.empty() ? "Missing X-Amz-Target header"
                         : "Unknown X-Amz-Target \"" + target + "\""));
    }
    if (impl_.options_.require_auth) {
      SignedRequest signed_request;
      signed_request.method = std::string(req.method_string());
      signed_request.target = std::string(req.target());
      for (const auto& field : req) {
        signed_request.headers.emplace_back(std::string(field.name_string()),
                                            std::string(field.value()));
      }
      signed_request.body = req.body();
      AuthResult auth = impl_.verifier_.Verify(signed_request,
                                               SystemClock::Get().NowMillis());
      if (!auth.ok()) {
        return reject(AuthError(auth.failure->http_status, auth.failure->code,
                                auth.failure->message));
      }
    }
    std::string host(req[http::field::host]);
    if (host.empty())
      host = impl_.options_.host + ":" + std::to_string(impl_.port_);
    // Queues are scoped by the region the request was signed for; under
    // require_auth the verifier has checked it is the configured one.
    std::string region =
        SigningRegion(std::string(req[http::field::authorization]))
            .value_or("");
    ++impl_.in_flight_;
    bool queued = impl_.pool_.Submit([self = shared_from_this(), op, host,
                                      region = std::move(region), keep_alive,
                                      version,
                                      body = std::move(req.body())]() mutable {
      ApiResponse response = self->impl_.api_.Handle(
          op, body, host, region, self->impl_.stop_source_.get_token());
      --self->impl_.in_flight_;
      net::post(self->stream_.get_executor(),
                [self, op = std::move(op), keep_alive, version,
                 response = std::move(response)]() mutable {
                  self->Respond(std::move(response), op, !keep_alive, version);
                });
    });
    if (!queued) {
      --impl_.in_flight_;
      CloseSocket();
    }
  }

  void Respond(ApiResponse response, const std::string& op, bool close,
               unsigned version) {
    if (!response.error_code.empty()) {
      Log(response.http_status >= 500 ? LogLevel::kError : LogLevel::kWarn,
          "sqs_error",
          {{"operation", op},
           {"status", response.http_status},
           {"code", response.error_code},
           {"message", response.error_message},
           {"peer", peer_}});
    }
    close = close || impl_.stopping_;
    res_ = {};
    res_.version(version);
    res_.result(static_cast<http::status>(response.http_status));
    res_.set(http::field::server, "cruncher-sqs");
    res_.set(http::field::content_type, std::string(kJsonContentType));
    res_.set("x-amzn-RequestId", RandomUuid());
    if (!response.query_error.empty()) {
      res_.set("x-amzn-query-error", response.query_error);
    }
    res_.keep_alive(!close);
    res_.body() = std::move(response.body);
    res_.prepare_payload();
    stream_.expires_after(
        std::chrono::seconds(impl_.options_.idle_timeout_seconds));
    http::async_write(
        stream_, res_,
        [self = shared_from_this(), close](beast::error_code ec, size_t) {
          if (ec) return;
          if (self->impl_.stopping_) return self->CloseSocket();
          if (close) return self->Linger();
          self->DoRead();
        });
  }

  void Shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  void CloseSocket() {
    phase_ = Phase::kClosing;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  // After answering a request we will not read (too large, malformed), reads
  // and drops what the client still sends, so that it can finish writing and
  // read our answer instead of failing with a reset; gives up after 5 s.
  void Linger() {
    phase_ = Phase::kClosing;
    Shutdown();
    stream_.expires_after(std::chrono::seconds(5));
    Drain();
  }
  void Drain() {
    stream_.async_read_some(
        net::buffer(discard_),
        [self = shared_from_this()](beast::error_code ec, size_t) {
          if (!ec) self->Drain();
        });
  }

  Impl& impl_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> res_;
  std::string peer_;
  Phase phase_ = Phase::kWaiting;  // on the strand
  std::atomic<Millis> waiting_since_{0};
  int served_ = 0;  // requests read on this connection
  char discard_[16 * 1024];
};

void SqsEndpoint::Impl::DoAccept() {
  acceptor_.async_accept(
      net::make_strand(ioc_), [this](beast::error_code ec, tcp::socket socket) {
        if (ec) {
          if (stopping_ || ec == net::error::operation_aborted) return;
          Log(LogLevel::kWarn, "sqs_accept_failed", {{"error", ec.message()}});
          return DoAccept();
        }
        if (stopping_) return;
        auto session = std::make_shared<Session>(*this, std::move(socket));
        bool pause = false;
        // Declared before the lock: if the victim closes meanwhile, this
        // may be its last reference, and ~Session locks mu_.
        std::shared_ptr<Session> victim;
        {
          std::lock_guard<std::mutex> lock(mu_);
          sessions_[session.get()] = session;
          if (static_cast<int>(sessions_.size()) > options_.max_connections) {
            victim = LongestIdleLocked();
            pause = victim == nullptr;
          }
          accept_paused_ = pause;
        }
        if (victim) victim->Evict();
        session->Start();
        if (!pause) DoAccept();
      });
}

std::shared_ptr<SqsEndpoint::Impl::Session>
SqsEndpoint::Impl::LongestIdleLocked() {
  // No lock() inside the loop: a temporary shared_ptr dropped here could be
  // a closing session's last reference, destroyed under mu_.
  Session* oldest = nullptr;
  Millis oldest_since = 0;
  for (auto& [ptr, weak] : sessions_) {
    if (weak.expired()) continue;  // closing: its destructor waits for mu_
    const Millis since = ptr->waiting_since();
    if (since == 0) continue;
    if (oldest == nullptr || since < oldest_since) {
      oldest = ptr;
      oldest_since = since;
    }
  }
  return oldest == nullptr ? nullptr : sessions_[oldest].lock();
}

void SqsEndpoint::Impl::SessionWaiting() {
  // A session that waits for a request can be evicted: a client held in the
  // backlog by a full house of busy connections can now be let in.
  std::lock_guard<std::mutex> lock(mu_);
  if (accept_paused_ && !stopping_) {
    accept_paused_ = false;
    net::post(acceptor_.get_executor(), [this] { DoAccept(); });
  }
}

void SqsEndpoint::Impl::SessionClosed(Session* session) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(session);
  sessions_changed_.notify_all();
  if (accept_paused_ && !stopping_) {
    accept_paused_ = false;
    net::post(acceptor_.get_executor(), [this] { DoAccept(); });
  }
}

void SqsEndpoint::Impl::Stop() {
  // How long the requests in flight get to write their answers once the
  // store has returned them, before their connections are closed anyway.
  constexpr auto kAnswerGrace = std::chrono::milliseconds(500);
  // Sessions are closed outside mu_: dropping the last reference runs
  // ~Session, which takes mu_.
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    for (auto& [ptr, weak] : sessions_) {
      if (auto session = weak.lock()) open.push_back(std::move(session));
    }
  }
  stop_source_.request_stop();  // long polls return now, empty
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ec;
    acceptor_.close(ec);
  });
  for (auto& session : open) session->Close(/*force=*/false);
  open.clear();
  // Finishes the requests running on the pool; their answers are posted to
  // their connections, which close once the answer is written.
  pool_.Shutdown();
  if (!io_threads_.empty()) {
    std::unique_lock<std::mutex> lock(mu_);
    sessions_changed_.wait_for(lock, kAnswerGrace,
                               [this] { return sessions_.empty(); });
    for (auto& [ptr, weak] : sessions_) {
      if (auto session = weak.lock()) open.push_back(std::move(session));
    }
  }
  for (auto& session : open) session->Close(/*force=*/true);
  open.clear();
  work_.reset();
  if (io_threads_.empty()) return;  // never started
  for (auto& t : io_threads_) t.join();
  io_threads_.clear();
  Log(LogLevel::kInfo, "sqs_endpoint_stopped", {{"url", Url()}});
}

SqsEndpoint::SqsEndpoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SqsEndpoint::~SqsEndpoint() { Stop(); }

Result<std::unique_ptr<SqsEndpoint>> SqsEndpoint::Start(
    local::LocalQueueStore& store, SqsEndpointOptions options) {
  if (options.require_auth && options.credentials.empty()) {
    return InvalidArgument(
        "SQS endpoint: require_auth needs at least one access key and secret");
  }
  if (options.max_connections < 1 || options.io_threads < 1 ||
      options.request_timeout_seconds < 1 || options.idle_timeout_seconds < 1) {
    return InvalidArgument(
        "SQS endpoint: max_connections, io_threads and the timeouts must be "
        "at least 1");
  }
  auto impl = std::make_unique<Impl>(store, std::move(options));
  CRUNCHER_RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<SqsEndpoint>(new SqsEndpoint(std::move(impl)));
}

int SqsEndpoint::port() const { return impl_->port(); }
std::string SqsEndpoint::url() const { return impl_->Url(); }
int SqsEndpoint::InFlightRequests() const { return impl_->InFlightRequests(); }
void SqsEndpoint::Stop() { impl_->Stop(); }

}  // namespace cruncher::sqs
