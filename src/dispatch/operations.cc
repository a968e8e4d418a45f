#include "dispatch/operations.h"

namespace cruncher::dispatch {

Result<std::string> RequeueJob(JobBackend& jobs, MessageQueue& queue,
                               const std::string& name) {
  CRUNCHER_ASSIGN_OR_RETURN(Job job, jobs.Get(name));
  if (!job.managed_by_cruncher()) {
    return FailedPrecondition("job " + name + " is not managed by Cruncher");
  }
  // A Job of another queue goes back to its own queue, not this one, where
  // another template would render it.
  const std::string origin = job.annotation(kQueueAnnotation);
  if (!origin.empty() && origin != queue.name()) {
    return FailedPrecondition("job " + name + " came from queue " + origin +
                              ", not " + queue.name() +
                              "; requeue it with that queue");
  }
  if (!job.finished()) {
    return FailedPrecondition("job " + name + " is " +
                              std::string(JobStateName(job.state())) +
                              "; only finished Jobs can be requeued");
  }
  std::string task = job.task();
  if (task.empty()) {
    return FailedPrecondition("job " + name + " has no task annotation");
  }
  auto sent = queue.Send({task, {}});
  if (!sent.ok()) {
    return sent.status().WithContext("requeue " + name + ": send to " +
                                     queue.name());
  }
  jobs.RecordAction(job, "Requeued",
                    "task sent back to " + queue.name() + " as message " +
                        *sent + "; deleting the Job");
  Status deleted = jobs.Delete(name);
  if (!deleted.ok() && deleted.code() != StatusCode::kNotFound) {
    return deleted.WithContext("requeue " + name + ": task sent as message " +
                               *sent + " but deleting the Job failed");
  }
  return sent;
}

Result<std::vector<std::string>> CollectGarbage(JobBackend& jobs,
                                                const GcOptions& options,
                                                Millis now) {
  CRUNCHER_ASSIGN_OR_RETURN(auto all, jobs.List());
  std::vector<std::string> deleted;
  for (const auto& job : all) {
    JobState state = job.state();
    if (state != JobState::kComplete &&
        !(state == JobState::kFailed && options.include_failed)) {
      continue;
    }
    if (now - job.completed_at() < options.older_than) continue;
    jobs.RecordAction(job, "GarbageCollected",
                      "finished " + FormatAge(now - job.completed_at()) +
                          " ago (" + std::string(JobStateName(state)) +
                          "); deleting the Job");
    Status s = jobs.Delete(job.name());
    if (!s.ok() && s.code() != StatusCode::kNotFound) {
      return s.WithContext("gc");
    }
    deleted.push_back(job.name());
  }
  return deleted;
}

}  // namespace cruncher::dispatch
