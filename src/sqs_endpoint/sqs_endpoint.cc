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
#include <map>
#include <mutex>
#include <optional>
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

class SqsEndpoint::Impl {
 public:
  class Session;

  Impl(local::LocalQueueStore& store, SqsEndpointOptions options)
      : options_(std::move(options)),
        api_(store, SqsApiOptions{options_.region, options_.account_id}),
        verifier_(options_.credentials, options_.region, "sqs"),
        pool_(std::make_unique<WorkerPool>(options_.max_connections)),
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

  void Stop();

 private:
  void DoAccept();
  void SessionClosed(Session* session);

  const SqsEndpointOptions options_;
  SqsApi api_;
  const SigV4Verifier verifier_;
  std::unique_ptr<WorkerPool> pool_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // guards the fields below
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

  // Closes the socket from the session's strand; pending operations fail.
  void Close() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ec;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
      self->stream_.close();
    });
  }

 private:
  void DoRead() {
    if (impl_.stopping_) return Shutdown();
    parser_.emplace();
    parser_->body_limit(impl_.options_.max_body_bytes);
    stream_.expires_after(
        std::chrono::seconds(impl_.options_.idle_timeout_seconds));
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->OnRead(ec);
                     });
  }

  void OnRead(beast::error_code ec) {
    static const auto& kHttpErrors =
        http::make_error_code(http::error::bad_version).category();
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
    if (ec) return;  // timeout, reset or closed by Stop: nothing to answer
    stream_.expires_never();
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
    bool queued = impl_.pool_->Submit([self = shared_from_this(), op, host,
                                       region = std::move(region), keep_alive,
                                       version,
                                       body = std::move(req.body())]() mutable {
      ApiResponse response = self->impl_.api_.Handle(op, body, host, region);
      net::post(self->stream_.get_executor(),
                [self, op = std::move(op), keep_alive, version,
                 response = std::move(response)]() mutable {
                  self->Respond(std::move(response), op, !keep_alive, version);
                });
    });
    if (!queued) Shutdown();
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
          if (close) return self->Linger();
          self->DoRead();
        });
  }

  void Shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  // After answering a request we will not read (too large, malformed), reads
  // and drops what the client still sends, so that it can finish writing and
  // read our answer instead of failing with a reset; gives up after 5 s.
  void Linger() {
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
  char discard_[16 * 1024];
};

void SqsEndpoint::Impl::DoAccept() {
  acceptor_.async_accept(net::make_strand(ioc_), [this](beast::error_code ec,
                                                        tcp::socket socket) {
    if (ec) {
      if (stopping_ || ec == net::error::operation_aborted) return;
      Log(LogLevel::kWarn, "sqs_accept_failed", {{"error", ec.message()}});
      return DoAccept();
    }
    if (stopping_) return;
    auto session = std::make_shared<Session>(*this, std::move(socket));
    bool pause = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      sessions_[session.get()] = session;
      pause = static_cast<int>(sessions_.size()) >= options_.max_connections;
      accept_paused_ = pause;
    }
    session->Start();
    if (!pause) DoAccept();
  });
}

void SqsEndpoint::Impl::SessionClosed(Session* session) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(session);
  if (accept_paused_ && !stopping_) {
    accept_paused_ = false;
    net::post(acceptor_.get_executor(), [this] { DoAccept(); });
  }
}

void SqsEndpoint::Impl::Stop() {
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
  for (auto& session : open) session->Close();
  open.clear();
  net::post(acceptor_.get_executor(), [this] {
    beast::error_code ec;
    acceptor_.close(ec);
  });
  // Finishes the requests running on the pool (long polls end within 20 s);
  // their responses are posted to closed connections and dropped.
  pool_.reset();
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
  if (options.max_connections < 1 || options.io_threads < 1) {
    return InvalidArgument(
        "SQS endpoint: max_connections and io_threads must be at least 1");
  }
  auto impl = std::make_unique<Impl>(store, std::move(options));
  CRUNCHER_RETURN_IF_ERROR(impl->Listen());
  return std::unique_ptr<SqsEndpoint>(new SqsEndpoint(std::move(impl)));
}

int SqsEndpoint::port() const { return impl_->port(); }
std::string SqsEndpoint::url() const { return impl_->Url(); }
void SqsEndpoint::Stop() { impl_->Stop(); }

}  // namespace cruncher::sqs
