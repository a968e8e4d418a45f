// Helpers shared by the unit tests: temporary directories and waiting for a
// condition with a generous timeout (never a sleep used as an assertion).
#ifndef CRUNCHER_TESTS_UNIT_FAKES_TEST_UTIL_H_
#define CRUNCHER_TESTS_UNIT_FAKES_TEST_UTIL_H_

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>

namespace cruncher::testing {

// A fresh directory under ::testing::TempDir(), removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "cruncher-unit-XXXXXX";
    char* made = ::mkdtemp(tmpl.data());
    if (made == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << tmpl;
    }
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
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

// Polls `condition` every few milliseconds until it holds or `timeout`
// passes; returns whether it held.
inline bool WaitFor(
    const std::function<bool()>& condition,
    std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_FAKES_TEST_UTIL_H_
