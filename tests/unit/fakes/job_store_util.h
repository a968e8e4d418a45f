// Records attempts in a LocalJobStore by hand, as the executor would: for
// tests that drive Job state without running processes.
#ifndef CRUNCHER_TESTS_UNIT_FAKES_JOB_STORE_UTIL_H_
#define CRUNCHER_TESTS_UNIT_FAKES_JOB_STORE_UTIL_H_

#include <vector>

#include "core/backoff.h"
#include "local/job_store.h"

namespace cruncher::testing {

inline Status RecordStarted(
    local::LocalJobStore& store,
    const std::vector<local::LocalJobStore::Started>& started, Millis now) {
  return store.RecordProgress({}, started, now, ExponentialBackoff{});
}

inline Status RecordFinished(
    local::LocalJobStore& store,
    const std::vector<local::LocalJobStore::Finished>& finished, Millis now,
    const ExponentialBackoff& backoff) {
  return store.RecordProgress(finished, {}, now, backoff);
}

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_FAKES_JOB_STORE_UTIL_H_
