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
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "core/job.h"
#include "core/status.h"

namespace cruncher {

// The output of one attempt (a Pod, or a local process run).
struct AttemptLog {
  std::string attempt;  // pod name, or "attempt-N"
  std::string output;   // stdout and stderr, interleaved
};

// What StreamLogs reads of a Job's attempts (kubectl logs' --tail and -f;
// on Kubernetes the pods' log endpoint with tailLines=N and follow=true).
struct LogOptions {
  // Only the last this many lines of each attempt; negative: all of it.
  long long tail_lines = -1;
  // Keep reading as attempts write and wait for further attempts, until
  // the Job is finished and everything it wrote has been read.
  bool follow = false;
};

// Receives a Job's output from StreamLogs, on the calling thread, in
// pieces of bounded size: a log never has to fit in memory.
class LogSink {
 public:
  virtual ~LogSink() = default;
  // The next attempt begins: its name and, where known, its outcome
  // ("attempt-2 (exit code 3)", "attempt-3 (running)", or a pod name).
  virtual void BeginAttempt(const std::string& attempt) = 0;
  // The next piece of that attempt's output (stdout and stderr interleaved).
  virtual void Write(std::string_view data) = 0;
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
  // `cancel` ends creates in progress: those not known to have created
  // their Job are then Unavailable (the outcome of one may be unknown).
  virtual std::vector<Status> CreateBatch(
      const std::vector<nlohmann::json>& manifests,
      const std::stop_token& cancel = {}) {
    std::vector<Status> out;
    out.reserve(manifests.size());
    for (const auto& m : manifests) {
      out.push_back(cancel.stop_requested()
                        ? Unavailable("stopped before creating the Job")
                        : Create(m));
    }
    return out;
  }

  // Get, Delete and StreamLogs refuse a name that is not a valid object
  // name with CheckJobName's InvalidArgument, on every backend alike.

  // NotFound if there is no such Job.
  virtual Result<Job> Get(const std::string& name) = 0;

  // Every Job managed by Cruncher, oldest first.
  virtual Result<std::vector<Job>> List() = 0;

  // Deletes the Job and its attempts (background propagation on Kubernetes).
  virtual Status Delete(const std::string& name) = 0;

  // Records why Cruncher acts on `job` (reason "Requeued",
  // "GarbageCollected"; a one-line message) where the backend keeps such
  // records for operators: a Kubernetes Event on the Job (`kubectl describe
  // job`). The local store has no such record and keeps nothing. Best
  // effort: a failure is logged, never returned, and never stops the act.
  virtual void RecordAction(const Job& job, std::string_view reason,
                            std::string_view message) {
    (void)job;
    (void)reason;
    (void)message;
  }

  // The number of Jobs of ours that are not finished (pending or running).
  virtual Result<int> CountUnfinished() = 0;

  // Streams the output of the Job's attempts, oldest first, to `sink`.
  // Without options.follow it reads what has been written so far; with it,
  // it returns once the Job is finished and all its output is read, or when
  // `stop` is requested. NotFound if there is no such Job (also when it is
  // deleted while followed); other errors name the attempt that failed.
  virtual Status StreamLogs(const std::string& name, const LogOptions& options,
                            LogSink& sink, std::stop_token stop) = 0;

  // The whole output of every attempt so far, in memory: for small logs
  // (tests, the demo). `cruncher logs` streams.
  Result<std::vector<AttemptLog>> Logs(const std::string& name) {
    struct Collect final : LogSink {
      std::vector<AttemptLog> logs;
      void BeginAttempt(const std::string& attempt) override {
        logs.push_back({attempt, ""});
      }
      void Write(std::string_view data) override {
        logs.back().output.append(data);
      }
    } collect;
    CRUNCHER_RETURN_IF_ERROR(StreamLogs(name, {}, collect, {}));
    return std::move(collect.logs);
  }
};

}  // namespace cruncher

#endif  // CRUNCHER_CORE_JOB_BACKEND_H_
