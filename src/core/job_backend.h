// JobBackend: where Jobs run. The local process executor (local/) and the
// Kubernetes API (kube/) implement it; the dispatcher and the CLI use only
// this interface, so both backends behave and print alike.
//
// Only Jobs labelled app.kubernetes.io/managed-by=cruncher are listed or
// touched. Errors name the Job and, for remote backends, the HTTP status.
//
// Thread-safety: implementations are safe for concurrent use.
#ifndef CRUNCHER_CORE_JOB_BACKEND_H_
#define CRUNCHER_CORE_JOB_BACKEND_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/job.h"
#include "core/status.h"

namespace cruncher {

// The output of one attempt (a Pod, or a local process run).
struct AttemptLog {
  std::string attempt;  // pod name, or "attempt-N"
  std::string output;   // stdout and stderr, interleaved
};

class JobBackend {
 public:
  virtual ~JobBackend() = default;

  // Creates a Job from a rendered manifest (metadata.name set).
  // AlreadyExists if a Job of that name exists (ours or not: check with Get);
  // InvalidArgument if the backend rejects the manifest (a permanent error);
  // Unavailable/Throttled for transient failures.
  virtual Status Create(const nlohmann::json& manifest) = 0;

  // Creates several Jobs: one Status per manifest, in order, each as Create
  // would return it. Backends that can commit several at once (the local
  // store: one transaction) override this; the default calls Create.
  virtual std::vector<Status> CreateBatch(
      const std::vector<nlohmann::json>& manifests) {
    std::vector<Status> out;
    out.reserve(manifests.size());
    for (const auto& m : manifests) out.push_back(Create(m));
    return out;
  }

  // NotFound if there is no such Job.
  virtual Result<Job> Get(const std::string& name) = 0;

  // Every Job managed by Cruncher, oldest first.
  virtual Result<std::vector<Job>> List() = 0;

  // Deletes the Job and its attempts (background propagation on Kubernetes).
  virtual Status Delete(const std::string& name) = 0;

  // The number of Jobs of ours that are not finished (pending or running).
  virtual Result<int> CountUnfinished() = 0;

  virtual Result<std::vector<AttemptLog>> Logs(const std::string& name) = 0;
};

}  // namespace cruncher

#endif  // CRUNCHER_CORE_JOB_BACKEND_H_
