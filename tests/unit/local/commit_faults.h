// CommitFaults: a FaultInjector (local/sqlite.h) for tests that makes chosen
// commits fail as SQLite fails them when the disk is full (or busy, or on an
// I/O error): the n-th commit from now on, or every commit while "failing".
#ifndef CRUNCHER_TESTS_UNIT_LOCAL_COMMIT_FAULTS_H_
#define CRUNCHER_TESTS_UNIT_LOCAL_COMMIT_FAULTS_H_

#include <atomic>
#include <string>

#include "local/sqlite.h"

namespace cruncher::testing {

class CommitFaults final : public local::FaultInjector {
 public:
  explicit CommitFaults(int rc = SQLITE_FULL) : rc_(rc) {}

  // Fails the n-th commit from now on (1 = the next one).
  void FailNth(int n) { nth_ = commits_ + n; }
  // Fails every commit while on.
  void set_failing(bool on) { failing_ = on; }

  int BeforeCommit(const std::string&) override {
    int n = ++commits_;
    if (failing_ || n == nth_) {
      ++failed_;
      return rc_;
    }
    return SQLITE_OK;
  }

  int commits() const { return commits_; }
  int failed() const { return failed_; }

 private:
  const int rc_;
  std::atomic<int> nth_{0};
  std::atomic<bool> failing_{false};
  std::atomic<int> commits_{0};
  std::atomic<int> failed_{0};
};

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_LOCAL_COMMIT_FAULTS_H_
