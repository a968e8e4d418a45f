// Operator actions on finished Jobs, shared by the CLI and the demo, for
// any backend pair.
//
// Thread-safety: stateless functions; the backends' own contracts apply.
#ifndef CRUNCHER_DISPATCH_OPERATIONS_H_
#define CRUNCHER_DISPATCH_OPERATIONS_H_

#include <string>
#include <vector>

#include "core/clock.h"
#include "core/job_backend.h"
#include "core/message_queue.h"

namespace cruncher::dispatch {

// Sends the Job's `task` annotation to `queue` as a new message, then
// deletes the Job. In that order: a crash in between duplicates the task,
// it never loses it. FailedPrecondition if the Job is not finished or has
// no task; NotFound if it does not exist. Returns the new message id.
Result<std::string> RequeueJob(JobBackend& jobs, MessageQueue& queue,
                               const std::string& name);

struct GcOptions {
  Millis older_than = 0;        // finished at least this long ago
  bool include_failed = false;  // Failed Jobs are kept unless asked
};
// Deletes finished Jobs by age; returns the names deleted. Stops at the
// first error, returning it (Jobs deleted before stay deleted).
Result<std::vector<std::string>> CollectGarbage(JobBackend& jobs,
                                                const GcOptions& options,
                                                Millis now);

}  // namespace cruncher::dispatch

#endif  // CRUNCHER_DISPATCH_OPERATIONS_H_
