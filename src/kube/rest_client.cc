#include "kube/rest_client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <utility>

#include "core/json_limits.h"
#include "core/log.h"
#include "kube/file_reader.h"

namespace cruncher::kube {
namespace {

// A watch event or a list page larger than this is refused rather than
// buffered: a Job object is a few KiB, the API server's own limit on an
// object is 1.5 MiB.
constexpr std::size_t kMaxStreamLineBytes = 16 << 20;

std::string HttpReasonPhrase(long status) {
  switch (status) {
    case 400:
      return "BadRequest";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "NotFound";
    case 405:
      return "MethodNotAllowed";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 422:
      return "Invalid";
    case 429:
      return "TooManyRequests";
    case 500:
      return "InternalError";
    case 503:
      return "ServiceUnavailable";
    case 504:
      return "Timeout";
    default:
      return "HTTP" + std::to_string(status);
  }
}

std::string StringField(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The Status object of an error response, or what can be said without one.
ApiError ParseApiError(long http_status, const std::string& body,
                       std::string& message) {
  ApiError error{http_status, "", {}};
  Result<nlohmann::json> status = ParseJson(body);
  if (status.ok() && status->is_object()) {
    error.reason = StringField(*status, "reason");
    message = StringField(*status, "message");
    const auto details = status->find("details");
    if (details != status->end() && details->is_object()) {
      const auto causes = details->find("causes");
      if (causes != details->end() && causes->is_array()) {
        for (const auto& cause : *causes) {
          if (error.fields.size() == kMaxCauseFields) break;
          if (cause.is_object()) {
            std::string field = StringField(cause, "field");
            if (!field.empty()) error.fields.push_back(std::move(field));
          }
        }
      }
    }
  }
  if (error.reason.empty()) error.reason = HttpReasonPhrase(http_status);
  // Not a Status (a proxy, a load balancer): a bounded excerpt.
  if (message.empty()) message = Excerpt(body, 200);
  return error;
}

// The Status of a response with a non-2xx HTTP status.
Status ErrorResponse(const ApiRequest& request, long http,
                     const std::string& body, ApiError* error) {
  std::string message;
  ApiError api = ParseApiError(http, body, message);
  if (error != nullptr) *error = api;
  std::string text = request.method + " " + request.path + ": " +
                     std::to_string(http) + " " + api.reason;
  // An empty body (a bare 429) has nothing more to say.
  if (!message.empty()) text += ": " + message;
  return Status(StatusCodeForHttp(http, api.reason), std::move(text));
}

bool IsIdempotent(const std::string& method) { return method != "POST"; }

// Retry-After in seconds (the API server never sends an HTTP date); 0 when
// absent or malformed.
Millis RetryAfterMillis(const std::string& value) {
  long long seconds = 0;
  auto [ptr, ec] =
      std::from_chars(value.data(), value.data() + value.size(), seconds);
  if (ec != std::errc() || ptr != value.data() + value.size() || seconds < 0) {
    return 0;
  }
  return std::min<long long>(seconds, 3600) * 1000;
}

std::string PercentEncode(std::string_view value) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

void SetPem(const PemSource& source, std::string& file, std::string& pem) {
  file = source.file;
  pem = source.data;
}

}  // namespace

std::string Excerpt(std::string_view text, std::size_t max) {
  std::string out(text.substr(0, max));
  std::replace_if(
      out.begin(), out.end(),
      [](unsigned char c) { return c < 0x20 || c == 0x7f; }, ' ');
  if (text.size() > max) out += "...";
  return out;
}

StatusCode StatusCodeForHttp(long http_status, std::string_view reason) {
  switch (http_status) {
    case 400:
    case 422:
      return StatusCode::kInvalidArgument;
    case 404:
    case 410:
      return StatusCode::kNotFound;
    case 409:
      return reason == "AlreadyExists" ? StatusCode::kAlreadyExists
                                       : StatusCode::kFailedPrecondition;
    case 429:
      return StatusCode::kThrottled;
    default:
      break;
  }
  if (http_status >= 500) return StatusCode::kUnavailable;
  return StatusCode::kFailedPrecondition;  // 401, 403, other 4xx
}

std::string WithQuery(
    std::string path,
    const std::vector<std::pair<std::string, std::string>>& params) {
  char sep = path.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [name, value] : params) {
    path += sep;
    path += name;
    path += '=';
    path += PercentEncode(value);
    sep = '&';
  }
  return path;
}

Result<std::unique_ptr<RestClient>> RestClient::Create(
    const ClusterConfig& config,
    std::shared_ptr<CredentialProvider> credentials,
    std::shared_ptr<net::HttpTransport> transport, const Clock& clock,
    RestOptions options) {
  if (config.server.empty()) {
    return InvalidArgument(config.source + ": no server");
  }
  if (!(options.qps > 0) || !std::isfinite(options.qps) || options.burst < 1) {
    return InvalidArgument("the Kubernetes client's qps and burst must be > 0");
  }
  // A file that cannot be read fails every request the same way: say so
  // now, naming it, as kubectl does.
  for (const auto& [field, source] :
       {std::pair{"certificate-authority", &config.certificate_authority},
        std::pair{"client-certificate", &config.client_certificate},
        std::pair{"client-key", &config.client_key}}) {
    if (source->file.empty()) continue;
    Result<std::string> bytes =
        ReadFileBounded(source->file, kMaxKubeconfigBytes);
    if (!bytes.ok()) {
      return InvalidArgument(config.source + ": " + field + ": " +
                             bytes.status().message());
    }
  }
  auto tls = std::make_shared<net::TlsOptions>();
  SetPem(config.certificate_authority, tls->ca_file, tls->ca_pem);
  SetPem(config.client_certificate, tls->client_cert_file,
         tls->client_cert_pem);
  SetPem(config.client_key, tls->client_key_file, tls->client_key_pem);
  tls->server_name = config.tls_server_name;
  tls->insecure_skip_verify = config.insecure_skip_tls_verify;
  return std::unique_ptr<RestClient>(
      new RestClient(config, std::move(credentials), std::move(transport),
                     clock, std::move(options), std::move(tls)));
}

RestClient::RestClient(const ClusterConfig& config,
                       std::shared_ptr<CredentialProvider> credentials,
                       std::shared_ptr<net::HttpTransport> transport,
                       const Clock& clock, RestOptions options,
                       std::shared_ptr<const net::TlsOptions> tls)
    : server_(config.server),
      namespace_(config.namespace_name.empty() ? "default"
                                               : config.namespace_name),
      source_(config.source),
      credentials_(std::move(credentials)),
      transport_(std::move(transport)),
      clock_(clock),
      options_(std::move(options)),
      tls_(std::move(tls)),
      bucket_(options_.qps, options_.burst, clock.NowMillis()) {}

bool RestClient::WaitForToken(const std::stop_token& stop) {
  while (true) {
    Millis next;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const Millis now = clock_.NowMillis();
      if (bucket_.TryTake(now)) return true;
      next = bucket_.NextAvailable(now);
    }
    if (!clock_.SleepUntil(next, stop)) return false;
  }
}

std::shared_ptr<const net::TlsOptions> RestClient::TlsFor(
    const Credentials& creds) {
  if (creds.client_certificate_pem.empty()) return tls_;
  std::lock_guard<std::mutex> lock(mu_);
  if (exec_tls_ == nullptr || exec_cert_pem_ != creds.client_certificate_pem) {
    auto tls = std::make_shared<net::TlsOptions>(*tls_);
    tls->client_cert_file.clear();
    tls->client_key_file.clear();
    tls->client_cert_pem = creds.client_certificate_pem;
    tls->client_key_pem = creds.client_key_pem;
    exec_cert_pem_ = creds.client_certificate_pem;
    exec_tls_ = std::move(tls);
  }
  return exec_tls_;
}

net::HttpOutcome RestClient::SendOnce(const ApiRequest& request,
                                      long timeout_ms,
                                      const std::stop_token& stop,
                                      const net::BodyChunkHandler& on_body,
                                      Status& setup_error) {
  net::HttpOutcome out;
  if (!WaitForToken(stop)) {
    out.stopped = true;
    out.status = Unavailable(request.method + " " + request.path + ": stopped");
    return out;
  }
  Result<Credentials> creds = credentials_->Get();
  if (!creds.ok()) {
    setup_error = creds.status();
    return out;
  }
  net::HttpRequest http;
  http.method = request.method;
  http.url = server_ + request.path;
  http.body = request.body;
  http.headers = {{"Accept", "application/json"},
                  {"User-Agent", options_.user_agent}};
  if (!request.body.empty()) {
    http.headers.emplace_back("Content-Type", "application/json");
  }
  if (!creds->token.empty()) {
    http.headers.emplace_back("Authorization", "Bearer " + creds->token);
  }
  http.timeout_ms = timeout_ms;
  http.connect_timeout_ms = options_.connect_timeout_ms;
  http.stop = stop;
  http.tls = TlsFor(*creds);
  http.on_body = on_body;
  return transport_->Send(http);
}

void RestClient::WarnIfNotAnswering(const ApiRequest& request,
                                    const net::HttpOutcome& out,
                                    Millis retry_in) {
  std::string reason;
  if (!out.status.ok()) {
    reason = out.timed_out ? "timeout" : "connection";
  } else if (out.response.status >= 500) {
    reason = "HTTP " + std::to_string(out.response.status);
  } else {
    return;
  }
  std::optional<std::int64_t> suppressed =
      not_answering_log_.Admit(reason, clock_.NowMillis());
  if (!suppressed) return;
  const std::string error = out.status.ok()
                                ? reason + " " + Excerpt(out.response.body)
                                : out.status.message();
  nlohmann::json fields = {
      {"message", "kubernetes API at " + server_ + " not answering: " + error},
      {"server", server_},
      {"request",
       request.method + " " + request.path.substr(0, request.path.find('?'))},
      {"reason", reason}};
  if (retry_in >= 0) {
    fields["retry_in_ms"] = retry_in;
  } else {
    fields["retrying"] = false;
  }
  if (*suppressed > 0) fields["suppressed"] = *suppressed;
  Log(LogLevel::kWarn, "kube_api_not_answering", std::move(fields));
}

net::HttpOutcome RestClient::SendWithRetries(
    const ApiRequest& request, long timeout_ms, const std::stop_token& stop,
    const net::BodyChunkHandler& on_body, Status& failure) {
  bool reauthenticated = false;
  int retries = 0;
  while (true) {
    Status setup_error;
    net::HttpOutcome out =
        SendOnce(request, timeout_ms, stop, on_body, setup_error);
    if (!setup_error.ok()) {
      failure = setup_error.WithContext(request.method + " " + request.path);
      return out;
    }
    Millis delay = -1;  // < 0: do not retry
    if (!out.status.ok()) {
      if (out.permanent) {
        // The server's certificate does not verify, a CA file is missing:
        // configuration, which retrying cannot fix. Fail at once.
        failure = Status(StatusCode::kFailedPrecondition, out.status.message());
        return out;
      }
      // A transport failure. For a stream that had begun (a watch cut
      // mid-body) or a POST, the caller decides what comes next. A timeout
      // is not retried either: a server that did not answer for the whole
      // request timeout will hardly answer the next try, and the callers
      // (the informer, the dispatcher) retry with their own backoff, so a
      // read command fails after one timeout rather than five.
      const bool begun = out.response.status != 0;
      if (!out.stopped && !begun && !out.timed_out &&
          IsIdempotent(request.method)) {
        delay = options_.retry_backoff.Delay(retries + 1);
      }
    } else if (out.response.status == 401 && !reauthenticated) {
      credentials_->Invalidate();
      reauthenticated = true;
      continue;
    } else if (out.response.status == 429) {
      delay = RetryAfterMillis(out.response.Header("retry-after"));
      if (delay == 0) delay = options_.retry_backoff.Delay(retries + 1);
      delay = std::min(delay, options_.max_retry_after);
    } else if (out.response.status >= 500 && IsIdempotent(request.method)) {
      delay = options_.retry_backoff.Delay(retries + 1);
    }
    const bool giving_up =
        delay < 0 || retries >= options_.max_retries || stop.stop_requested();
    if (!out.stopped && !stop.stop_requested()) {
      WarnIfNotAnswering(request, out, giving_up ? -1 : delay);
    }
    if (giving_up) {
      failure = out.status;
      return out;
    }
    ++retries;
    if (!clock_.SleepFor(delay, stop)) {
      // Stopped while waiting to retry: the answer we hold (a 429, a 503)
      // is not what the caller should act on, the stop is.
      const std::string last = out.status.ok()
                                   ? std::to_string(out.response.status)
                                   : out.status.message();
      failure = Unavailable(request.method + " " + request.path +
                            ": stopped while waiting to retry after " + last);
      out.stopped = true;
      return out;
    }
  }
}

Result<std::string> RestClient::DoText(const ApiRequest& request,
                                       const std::stop_token& stop,
                                       ApiError* error) {
  Status failure;
  net::HttpOutcome out = SendWithRetries(
      request,
      request.timeout_ms > 0 ? request.timeout_ms : options_.request_timeout_ms,
      stop, nullptr, failure);
  if (error != nullptr) *error = ApiError{};
  if (!failure.ok()) return failure;  // names the request already
  const long http = out.response.status;
  if (http >= 200 && http < 300) return std::move(out.response.body);
  return ErrorResponse(request, http, out.response.body, error);
}

Result<nlohmann::json> RestClient::Do(const ApiRequest& request,
                                      const std::stop_token& stop,
                                      ApiError* error) {
  Result<std::string> text = DoText(request, stop, error);
  if (!text.ok()) return text.status();
  if (text->empty()) return nlohmann::json::object();
  Result<nlohmann::json> body = ParseJson(*text);
  if (!body.ok()) {
    return Unavailable(
        request.method + " " + request.path +
        ": a response body that is not JSON: " + body.status().message());
  }
  return std::move(*body);
}

Status RestClient::Stream(
    const ApiRequest& request,
    const std::function<bool(nlohmann::json object)>& on_object,
    const std::stop_token& stop, ApiError* error) {
  std::string line;
  bool too_long = false;
  bool closed_by_handler = false;
  std::string not_json;  // an excerpt of the line that ended the stream
  auto on_body = [&](std::string_view chunk) {
    while (!chunk.empty()) {
      const std::size_t nl = chunk.find('\n');
      const std::string_view piece = chunk.substr(0, nl);
      if (line.size() + piece.size() > kMaxStreamLineBytes) {
        too_long = true;
        return false;
      }
      line.append(piece);
      if (nl == std::string_view::npos) break;
      chunk.remove_prefix(nl + 1);
      if (line.empty()) continue;
      Result<nlohmann::json> object = ParseJson(line);
      if (!object.ok()) {
        // The stream is out of step with the server (a proxy's page, a
        // cut object): nothing after it can be trusted either.
        not_json = Excerpt(line);
        return false;
      }
      line.clear();
      if (!on_object(std::move(*object))) {
        closed_by_handler = true;
        return false;
      }
    }
    return true;
  };
  Status failure;
  // No whole-exchange timeout: the server ends a watch (timeoutSeconds);
  // the stop token and TCP keep-alive end it from this side.
  net::HttpOutcome out =
      SendWithRetries(request, request.timeout_ms, stop, on_body, failure);
  const std::string what = request.method + " " + request.path;
  if (error != nullptr) *error = ApiError{};
  if (closed_by_handler) return Status::Ok();
  if (too_long) {
    return Unavailable(what + ": a streamed object over " +
                       std::to_string(kMaxStreamLineBytes) + " bytes");
  }
  if (!not_json.empty()) {
    return Unavailable(
        what + ": the stream sent a line that is not JSON: " + not_json);
  }
  if (!failure.ok()) return failure;
  const long http = out.response.status;
  if (http >= 200 && http < 300) return Status::Ok();
  return ErrorResponse(request, http, out.response.body, error);
}

}  // namespace cruncher::kube
