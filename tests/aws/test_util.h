// Helpers shared by the AWS tests: temporary directories and files, and a
// scriptable fake net::HttpTransport.
#ifndef CRUNCHER_TESTS_AWS_TEST_UTIL_H_
#define CRUNCHER_TESTS_AWS_TEST_UTIL_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "net/http_transport.h"

namespace cruncher::aws::testing {

// A fresh directory under $TMPDIR, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cruncher-aws-XXXXXX")
            .string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

  // Writes `content` to path()/name and returns the full path.
  std::string Write(const std::string& name, const std::string& content,
                    bool executable = false) const {
    std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    if (executable) {
      std::filesystem::permissions(p, std::filesystem::perms::owner_all);
    }
    return p;
  }

 private:
  std::string path_;
};

// Answers each request with `script(request, n)` (n counts from 0) and
// records the requests.
class FakeTransport : public net::HttpTransport {
 public:
  using Script =
      std::function<net::HttpOutcome(const net::HttpRequest&, int n)>;
  explicit FakeTransport(Script script) : script_(std::move(script)) {}

  net::HttpOutcome Send(const net::HttpRequest& request) override {
    int n;
    {
      std::lock_guard<std::mutex> lock(mu_);
      n = static_cast<int>(requests_.size());
      requests_.push_back(request);
    }
    return script_(request, n);
  }

  std::vector<net::HttpRequest> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
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
  static net::HttpOutcome ConnectionFailure(bool timed_out = false) {
    net::HttpOutcome out;
    out.status = Unavailable("POST http://fake/: Connection reset by peer");
    out.timed_out = timed_out;
    return out;
  }

 private:
  Script script_;
  std::mutex mu_;
  std::vector<net::HttpRequest> requests_;
};

inline std::string HeaderOf(const net::HttpRequest& r,
                            const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

}  // namespace cruncher::aws::testing

#endif  // CRUNCHER_TESTS_AWS_TEST_UTIL_H_
