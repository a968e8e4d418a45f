#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <future>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_set>

#include "net/http_transport.h"

namespace cruncher::net {
namespace {

// Once per process, before any handle exists.
void GlobalInitOnce() {
  static const bool initialized = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)initialized;
}

std::string Trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

// One request in flight: owned by the Send call that waits for it, touched
// by libcurl's callbacks and the loop on the I/O thread only, until `done`
// is fulfilled.
struct Exchange {
  const HttpRequest* request = nullptr;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string connect_to;  // for TlsOptions::server_name
  curl_slist* connect_to_list = nullptr;
  std::string url;  // the URL sent (host replaced for server_name)
  HttpOutcome out;
  bool begun = false;          // a byte of the response arrived
  bool too_large = false;      // the body passed max_body_bytes
  bool handler_ended = false;  // on_body returned false
  // libcurl's own account of a failure ("Failed to connect to 127.0.0.1
  // port 6443 after 0 ms: Connection refused"), more specific than the
  // error code's text.
  std::array<char, CURL_ERROR_SIZE> error{};
  std::promise<void> done;
};

std::size_t OnBody(char* data, std::size_t size, std::size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  const std::size_t len = size * n;
  x->begun = true;
  if (x->request->on_body) {
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300) {
      if (!x->request->on_body(std::string_view(data, len))) {
        x->handler_ended = true;
        return 0;  // libcurl ends the transfer with CURLE_WRITE_ERROR
      }
      return len;
    }
  }
  if (x->out.response.body.size() + len > x->request->max_body_bytes) {
    x->too_large = true;
    return 0;
  }
  x->out.response.body.append(data, len);
  return len;
}

std::size_t OnHeader(char* data, std::size_t size, std::size_t n, void* user) {
  auto* x = static_cast<Exchange*>(user);
  x->begun = true;
  HttpResponse& response = x->out.response;
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response starts (after a 100 Continue or a redirect).
    response.headers.clear();
    return size * n;
  }
  std::size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = Trim(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
      return static_cast<char>(std::tolower(c));
    });
    response.headers[name] = Trim(line.substr(colon + 1));
  }
  return size * n;
}

void SetBlob(CURL* easy, CURLoption option, const std::string& pem) {
  curl_blob blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
  curl_easy_setopt(easy, option, &blob);
}

// kubeconfig's tls-server-name: the request goes to the URL's address but
// TLS (SNI and verification) uses another name. libcurl verifies against
// the URL's host, so the URL names server_name and CONNECT_TO maps it back
// to the real host and port.
Status RouteViaServerName(Exchange& x, const std::string& server_name) {
  CURLU* u = curl_url();
  if (u == nullptr) return Internal("curl_url failed");
  char* host = nullptr;
  char* port = nullptr;
  char* rewritten = nullptr;
  Status status;
  if (curl_url_set(u, CURLUPART_URL, x.url.c_str(), 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
      curl_url_set(u, CURLUPART_HOST, server_name.c_str(), 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_URL, &rewritten, 0) != CURLUE_OK) {
    status = InvalidArgument("cannot route " + x.url + " via TLS server name " +
                             server_name);
  } else {
    x.url = rewritten;
    x.connect_to = server_name + ":" + port + ":" + host + ":" + port;
    x.connect_to_list = curl_slist_append(nullptr, x.connect_to.c_str());
  }
  curl_free(host);
  curl_free(port);
  curl_free(rewritten);
  curl_url_cleanup(u);
  return status;
}

void ApplyTls(CURL* easy, const TlsOptions& tls) {
  if (!tls.ca_pem.empty()) {
    SetBlob(easy, CURLOPT_CAINFO_BLOB, tls.ca_pem);
  } else if (!tls.ca_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_CAINFO, tls.ca_file.c_str());
  }
  if (!tls.client_cert_pem.empty()) {
    SetBlob(easy, CURLOPT_SSLCERT_BLOB, tls.client_cert_pem);
  } else if (!tls.client_cert_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLCERT, tls.client_cert_file.c_str());
  }
  if (!tls.client_key_pem.empty()) {
    SetBlob(easy, CURLOPT_SSLKEY_BLOB, tls.client_key_pem);
  } else if (!tls.client_key_file.empty()) {
    curl_easy_setopt(easy, CURLOPT_SSLKEY, tls.client_key_file.c_str());
  }
  curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
  curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
  if (tls.insecure_skip_verify) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

// Prepares x.easy for x.request; an error leaves nothing to clean up but
// x.easy and the lists, which ~Exchange's owner frees.
Status Prepare(Exchange& x) {
  const HttpRequest& request = *x.request;
  x.url = request.url;
  if (request.tls && !request.tls->server_name.empty()) {
    CRUNCHER_RETURN_IF_ERROR(RouteViaServerName(x, request.tls->server_name));
  }
  CURL* easy = x.easy;
  for (const auto& [name, value] : request.headers) {
    std::string line = name + ": " + value;
    x.headers = curl_slist_append(x.headers, line.c_str());
  }
  // Never wait for "100 Continue": bodies are small.
  x.headers = curl_slist_append(x.headers, "Expect:");

  curl_easy_setopt(easy, CURLOPT_PRIVATE, &x);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, x.error.data());
  curl_easy_setopt(easy, CURLOPT_URL, x.url.c_str());
  if (x.connect_to_list != nullptr) {
    curl_easy_setopt(easy, CURLOPT_CONNECT_TO, x.connect_to_list);
  }
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
  // h2 over TLS when the server offers it (ALPN), HTTP/1.1 otherwise; wait
  // for a connection being set up rather than opening a second one, so
  // concurrent requests become streams of one connection.
  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, request.timeout_ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, request.connect_timeout_ms);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, x.headers);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &x);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &x);
  if (request.tls) ApplyTls(easy, *request.tls);
  if (request.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (request.method == "POST" || !request.body.empty()) {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
    if (request.method != "POST") {
      curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  return Status::Ok();
}

std::string Describe(const HttpRequest& request) {
  return request.method + " " + request.url;
}

// What went wrong, as specifically as libcurl knows: its message for this
// transfer (which host and port, which certificate check), for a failed
// connect the system's reason (recent libcurl versions say only "Couldn't
// connect to server"), then the error code and its text, which callers and
// logs match on: "Failed to connect to 127.0.0.1 port 6443 after 0 ms:
// Connection refused (curl error 7: Couldn't connect to server)".
std::string Explain(Exchange& x, CURLcode rc) {
  const std::string code = curl_easy_strerror(rc);
  std::string what = Trim(x.error.data());
  const std::string code_suffix = ": " + code;
  if (what.size() > code_suffix.size() && what.ends_with(code_suffix)) {
    what.resize(what.size() - code_suffix.size());
  }
  if (what == code) what.clear();
  long os_errno = 0;
  if (rc == CURLE_COULDNT_CONNECT &&
      curl_easy_getinfo(x.easy, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK &&
      os_errno != 0) {
    const std::string reason =
        std::system_category().message(static_cast<int>(os_errno));
    if (what.find(reason) == std::string::npos) {
      what += what.empty() ? reason : ": " + reason;
    }
  }
  const std::string tail =
      "(curl error " + std::to_string(static_cast<int>(rc)) + ": " + code + ")";
  return what.empty() ? tail : what + " " + tail;
}

// Failures of our configuration or of the server's identity, not of the
// network: the same request would fail the same way.
bool IsPermanent(CURLcode rc) {
  switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
      return true;
    default:
      return false;
  }
}

}  // namespace

std::string HttpResponse::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

// The I/O thread. Exchanges are handed over through `pending_` (any thread)
// and live in `active_` (I/O thread only) until they complete or stop.
class CurlHttpTransport::Loop {
 public:
  Loop() : multi_(curl_multi_init()) {
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    thread_ = std::jthread([this](std::stop_token stop) { Run(stop); });
  }

  ~Loop() {
    thread_.request_stop();
    curl_multi_wakeup(multi_);
    thread_.join();
    curl_multi_cleanup(multi_);
  }

  void Submit(Exchange* x) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      pending_.push_back(x);
    }
    curl_multi_wakeup(multi_);
  }

  // Makes the loop look at its exchanges' stop tokens now rather than at
  // its next wake-up (at most a second away).
  void Wake() { curl_multi_wakeup(multi_); }

 private:
  void Run(const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      AdmitPending();
      int running = 0;
      curl_multi_perform(multi_, &running);
      Reap();
      EndStopped();
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    AdmitPending();
    for (Exchange* x : std::vector<Exchange*>(active_.begin(), active_.end())) {
      x->out.stopped = true;
      x->out.status =
          Unavailable(Describe(*x->request) + ": the transport was closed");
      Finish(x);
    }
  }

  void AdmitPending() {
    std::vector<Exchange*> batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      batch.swap(pending_);
    }
    for (Exchange* x : batch) {
      CURLMcode rc = curl_multi_add_handle(multi_, x->easy);
      if (rc != CURLM_OK) {
        x->out.status =
            Internal(Describe(*x->request) +
                     ": curl_multi_add_handle: " + curl_multi_strerror(rc));
        x->done.set_value();
        continue;
      }
      active_.insert(x);
    }
  }

  void Reap() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      char* private_data = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &private_data);
      auto* x = reinterpret_cast<Exchange*>(private_data);
      const CURLcode rc = msg->data.result;
      const HttpRequest& request = *x->request;
      if (rc == CURLE_OK) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE,
                          &x->out.response.status);
      } else if (x->too_large) {
        x->out.status =
            Unavailable(Describe(request) + ": response body over " +
                        std::to_string(request.max_body_bytes) + " bytes");
        // The server did answer: keep its status, so that a client does
        // not retry as after a connection failure and meet the same body.
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE,
                          &x->out.response.status);
      } else {
        x->out.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        x->out.permanent = IsPermanent(rc);
        x->out.stopped = x->handler_ended;
        x->out.status = Unavailable(Describe(request) + ": " + Explain(*x, rc));
        // Keep the status of a response cut mid-body (a watch stream).
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE,
                          &x->out.response.status);
      }
      Finish(x);
    }
  }

  // Abandons exchanges whose stop was requested, where that loses nothing:
  // before any of the response arrived, or for a streamed body.
  void EndStopped() {
    std::vector<Exchange*> ended;
    for (Exchange* x : active_) {
      const HttpRequest& request = *x->request;
      if (request.stop.stop_requested() && (!x->begun || request.on_body)) {
        ended.push_back(x);
      }
    }
    for (Exchange* x : ended) {
      x->out.stopped = true;
      x->out.status = Unavailable(Describe(*x->request) + ": stopped");
      curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE,
                        &x->out.response.status);
      Finish(x);
    }
  }

  void Finish(Exchange* x) {
    curl_multi_remove_handle(multi_, x->easy);
    active_.erase(x);
    x->done.set_value();
  }

  CURLM* multi_;
  std::mutex mu_;
  std::vector<Exchange*> pending_;        // guarded by mu_
  std::unordered_set<Exchange*> active_;  // I/O thread only
  std::jthread thread_;                   // last: starts after the rest exists
};

CurlHttpTransport::CurlHttpTransport() {
  GlobalInitOnce();
  loop_ = std::make_unique<Loop>();
}

CurlHttpTransport::~CurlHttpTransport() = default;

HttpOutcome CurlHttpTransport::Send(const HttpRequest& request) {
  Exchange x;
  x.request = &request;
  if (request.stop.stop_requested()) {
    x.out.stopped = true;
    x.out.status =
        Unavailable(Describe(request) + ": stopped before it was sent");
    return x.out;
  }
  x.easy = curl_easy_init();
  if (x.easy == nullptr) {
    x.out.status = Internal("curl_easy_init failed");
    return x.out;
  }
  Status prepared = Prepare(x);
  if (prepared.ok()) {
    std::future<void> done = x.done.get_future();
    {
      std::stop_callback wake(request.stop, [this] { loop_->Wake(); });
      loop_->Submit(&x);
      done.wait();
    }
  } else {
    x.out.status = prepared;
    x.out.permanent = true;  // the request itself cannot be made
  }
  curl_easy_cleanup(x.easy);
  curl_slist_free_all(x.headers);
  curl_slist_free_all(x.connect_to_list);
  if (!x.out.status.ok() && !x.out.stopped && !x.too_large) {
    // Keep the headers and status of a cut stream; drop a partial body.
    x.out.response.body.clear();
  }
  return std::move(x.out);
}

}  // namespace cruncher::net
