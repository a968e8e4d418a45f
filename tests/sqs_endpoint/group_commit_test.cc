// Unit tests for GroupCommit's hand-off between concurrent callers.
#include "sqs_endpoint/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace cruncher::sqs {
namespace {

// Runs `request` through `commit` and returns the response, or "error: WHAT"
// if Run threw.
template <typename Commit>
std::string RunOrError(Commit& commit, int request) {
  try {
    return std::to_string(commit.Run("q", request));
  } catch (const std::exception& e) {
    return std::string("error: ") + e.what();
  }
}

TEST(GroupCommit, CombinesQueuedRequestsIntoOneFlush) {
  std::latch in_first_flush(1);
  std::vector<size_t> group_sizes;
  GroupCommit<int, int>* commit_ptr = nullptr;
  GroupCommit<int, int> commit(
      [&](const std::string&, const std::vector<const int*>& requests) {
        group_sizes.push_back(requests.size());
        if (group_sizes.size() == 1) {
          in_first_flush.count_down();
          // Wait (without sleeping) until two callers queue behind us.
          while (commit_ptr->queued() < 2) std::this_thread::yield();
        }
        std::vector<int> out;
        for (const int* r : requests) out.push_back(*r * 10);
        return out;
      });
  commit_ptr = &commit;
  std::string a, b, c;
  std::thread ta([&] { a = RunOrError(commit, 1); });
  in_first_flush.wait();
  std::thread tb([&] { b = RunOrError(commit, 2); });
  std::thread tc([&] { c = RunOrError(commit, 3); });
  ta.join();
  tb.join();
  tc.join();
  EXPECT_EQ(a, "10");
  EXPECT_EQ(b, "20");
  EXPECT_EQ(c, "30");
  EXPECT_EQ(group_sizes, (std::vector<size_t>{1, 2}));
}

// Regression (issue 8, defect 4): a throwing flush left the commit busy, so
// every later caller waited forever, and the other members of the failed
// group never learned that their request failed.
TEST(GroupCommit, FlushExceptionReachesEveryCallerOfItsGroupAndLaterRunsWork) {
  std::latch in_first_flush(1);
  std::atomic<int> calls{0};
  GroupCommit<int, int>* commit_ptr = nullptr;
  GroupCommit<int, int> commit(
      [&](const std::string&, const std::vector<const int*>& requests) {
        const int call = ++calls;
        if (call == 1) {
          in_first_flush.count_down();
          while (commit_ptr->queued() < 2) std::this_thread::yield();
          throw std::runtime_error("disk I/O error");
        }
        if (call == 2) {
          EXPECT_EQ(requests.size(), 2u);
          throw std::runtime_error("database or disk is full");
        }
        std::vector<int> out;
        for (const int* r : requests) out.push_back(*r * 10);
        return out;
      });
  commit_ptr = &commit;
  std::string a, b, c;
  std::thread ta([&] { a = RunOrError(commit, 1); });
  in_first_flush.wait();
  std::thread tb([&] { b = RunOrError(commit, 2); });
  std::thread tc([&] { c = RunOrError(commit, 3); });
  ta.join();
  tb.join();
  tc.join();
  EXPECT_EQ(a, "error: disk I/O error");
  EXPECT_EQ(b, "error: database or disk is full");
  EXPECT_EQ(c, "error: database or disk is full");
  EXPECT_EQ(RunOrError(commit, 4), "40");
}

TEST(GroupCommit, FlushReturningTheWrongNumberOfResponsesIsAnError) {
  GroupCommit<int, int> commit(
      [](const std::string&, const std::vector<const int*>&) {
        return std::vector<int>{};
      });
  EXPECT_EQ(RunOrError(commit, 1).rfind("error: ", 0), 0u);
  EXPECT_EQ(RunOrError(commit, 2).rfind("error: ", 0), 0u);
}

}  // namespace
}  // namespace cruncher::sqs
