// Records attempts in a LocalJobStore by hand, as the executor would: for
// tests that drive Job state without running processes.
#ifndef CRUNCHER_TESTS_UNIT_FAKES_JOB_STORE_UTIL_H_
#define CRUNCHER_TESTS_UNIT_FAKES_JOB_STORE_UTIL_H_

#include <vector>

#include "core/backoff.h"
#include "local/job_store.h"

namespace cruncher::testing {

// Records the starts, all at `now`.
inline Status RecordStarted(local::LocalJobStore& store,
                            std::vector<local::LocalJobStore::Started> started,
                            Millis now) {
  std::vector<local::LocalJobStore::Progress> progress;
  for (auto& s : started) {
    s.at = now;
    progress.emplace_back(std::move(s));
  }
  return store.RecordProgress(progress, ExponentialBackoff{});
}

// Records the finishes, all at `now`.
inline Status RecordFinished(
    local::LocalJobStore& store,
    std::vector<local::LocalJobStore::Finished> finished, Millis now,
    const ExponentialBackoff& backoff) {
  std::vector<local::LocalJobStore::Progress> progress;
  for (auto& f : finished) {
    f.at = now;
    progress.emplace_back(std::move(f));
  }
  return store.RecordProgress(progress, backoff);
}

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_FAKES_JOB_STORE_UTIL_H_
