#include <curl/curl.h>

#include <algorithm>
#include <cctype>

#include "aws/http_transport.h"

namespace cruncher::aws {
namespace {

// Handles are never shared between calls, so once-per-process global init is
// all libcurl needs.
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

std::size_t WriteBody(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<HttpResponse*>(user)->body.append(data, size * n);
  return size * n;
}

std::size_t WriteHeader(char* data, std::size_t size, std::size_t n,
                        void* user) {
  auto* response = static_cast<HttpResponse*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response starts (after a 100 Continue or a redirect).
    response->headers.clear();
    return size * n;
  }
  std::size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = Trim(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
      return static_cast<char>(std::tolower(c));
    });
    response->headers[name] = Trim(line.substr(colon + 1));
  }
  return size * n;
}

// Called by libcurl often while data flows and about once a second while
// the connection is idle (a long poll): one atomic load. Abandons the
// exchange only before any of the response arrived, so that a response in
// progress (messages already received by the server's count) is read whole.
int AbortOnStop(void* user, curl_off_t /*dltotal*/, curl_off_t dlnow,
                curl_off_t /*ultotal*/, curl_off_t /*ulnow*/) {
  const auto* request = static_cast<const HttpRequest*>(user);
  return dlnow == 0 && request->stop.stop_requested() ? 1 : 0;
}

}  // namespace

std::string HttpResponse::Header(const std::string& lower_name) const {
  auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

CurlHttpTransport::CurlHttpTransport() { GlobalInitOnce(); }

CurlHttpTransport::~CurlHttpTransport() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* CurlHttpTransport::Borrow() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void CurlHttpTransport::Return(void* handle) {
  std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(handle);
}

HttpOutcome CurlHttpTransport::Send(const HttpRequest& request) {
  HttpOutcome out;
  if (request.stop.stop_requested()) {
    out.stopped = true;
    out.status = Unavailable(request.method + " " + request.url +
                             ": stopped before it was sent");
    return out;
  }
  CURL* curl = static_cast<CURL*>(Borrow());
  if (curl == nullptr) {
    out.status = Internal("curl_easy_init failed");
    return out;
  }
  curl_easy_reset(curl);  // keeps the connection cache
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    std::string line = name + ": " + value;
    headers = curl_slist_append(headers, line.c_str());
  }
  // Never wait for "100 Continue": SQS bodies are small.
  headers = curl_slist_append(headers, "Expect:");

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, request.timeout_ms);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, request.connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &out.response);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &out.response);
  if (request.stop.stop_possible()) {
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &AbortOnStop);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &request);
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  }
  if (request.method == "GET") {
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
  } else {
    if (request.method != "POST") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    }
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(request.body.size()));
  }

  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    out.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
    out.stopped = rc == CURLE_ABORTED_BY_CALLBACK;
    out.status = Unavailable(request.method + " " + request.url + ": " +
                             curl_easy_strerror(rc) + " (curl error " +
                             std::to_string(static_cast<int>(rc)) + ")");
    out.response = HttpResponse();
    // A failed exchange may leave the connection in an unknown state; drop
    // the handle and its connections rather than reuse them.
    curl_easy_cleanup(curl);
    return out;
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &out.response.status);
  Return(curl);
  return out;
}

}  // namespace cruncher::aws
