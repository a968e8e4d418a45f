// LocalJobStore: durable Job records for the local executor, and the
// JobBackend that the CLI and the dispatcher use in local mode.
//
// Jobs live in DATA_DIR/cruncher.db beside the queues, each as its
// Kubernetes JSON object plus the columns the executor schedules by. The
// output of attempt N of Job J is kept in DATA_DIR/logs/J/attempt-N.log.
// Creating a Job rings DATA_DIR/jobs.doorbell so that a running executor,
// in this process or another, starts it at once.
//
// Thread-safety: all methods are safe from any thread.
#ifndef CRUNCHER_LOCAL_JOB_STORE_H_
#define CRUNCHER_LOCAL_JOB_STORE_H_

#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/job_backend.h"
#include "local/doorbell.h"
#include "local/job_lifecycle.h"
#include "local/sqlite.h"

namespace cruncher::local {

class LocalJobStore final : public JobBackend {
 public:
  // With a `queue_label`, List and CountUnfinished see only the Jobs whose
  // cruncher.dev/queue label it is (one queue's, as the Kubernetes backend
  // selects them); "" sees every queue's (the executor runs them all).
  static Result<std::unique_ptr<LocalJobStore>> Open(
      const std::string& data_dir, Durability durability = Durability::kFull,
      Clock& clock = SystemClock::Get(), std::string queue_label = "");

  // Validates that the Job can run locally (InvalidArgument otherwise),
  // then stores it as Pending.
  Status Create(const nlohmann::json& manifest) override;
  // All valid manifests in one transaction (one disk sync).
  std::vector<Status> CreateBatch(const std::vector<nlohmann::json>& manifests,
                                  const std::stop_token& cancel = {}) override;
  Result<Job> Get(const std::string& name) override;
  Result<std::vector<Job>> List() override;
  // Deletes the record and the logs; a running attempt is stopped by the
  // executor when it notices.
  Status Delete(const std::string& name) override;
  Result<int> CountUnfinished() override;
  // Reads the attempts' log files in pieces; with follow, polls them and
  // the Job's record through the clock every kFollowPollMillis.
  Status StreamLogs(const std::string& name, const LogOptions& options,
                    LogSink& sink, std::stop_token stop) override;
  static constexpr Millis kFollowPollMillis = 200;

  // --- For the executor -------------------------------------------------

  struct Runnable {
    Job job;
    LocalRunSpec spec;
    int attempt = 0;        // the number this attempt will have (1-based)
    Millis started_at = 0;  // the first attempt's start, 0 if none yet
  };
  // Pending Jobs whose next attempt is due at `now`, oldest first.
  Result<std::vector<Runnable>> DueJobs(Millis now, int limit);
  // The earliest time a pending Job becomes due, or 0 if none is pending.
  Result<Millis> NextDueTime();

  // What the executor saw happen to an attempt, at time `at`.
  struct Started {
    std::string job;
    int attempt = 0;
    Millis at = 0;
  };
  struct Finished {
    std::string job;
    int attempt = 0;
    AttemptResult result;
    bool interrupted = false;  // the executor stopped it; not the task's fault
    Millis at = 0;
  };
  using Progress = std::variant<Started, Finished>;
  // Records `progress` in order in one transaction (one disk sync however
  // many attempts): a start marks the Job running, a finish retries or
  // finishes it. On failure nothing is recorded and the caller may pass the
  // same progress again: each step applies only to the attempt it names in
  // the state it expects (a start to a pending Job whose previous attempt
  // was attempt-1, a finish to the Job running that attempt), so a step
  // recorded already, or one of a Job deleted or recreated meanwhile, is
  // skipped rather than applied twice.
  Status RecordProgress(const std::vector<Progress>& progress,
                        const ExponentialBackoff& backoff);
  // Fails a pending Job (e.g. its deadline passed while it waited); does
  // nothing if the Job is not pending (running, finished or deleted).
  Status FailPending(const std::string& name, const std::string& reason,
                     const std::string& message, Millis now);
  // Marks every attempt left running by a previous executor as interrupted
  // and returns those Jobs' names.
  Result<std::vector<std::string>> RecoverInterrupted(Millis now);
  // Deletes finished Jobs whose ttlSecondsAfterFinished has passed.
  Result<int> DeleteExpired(Millis now);
  // Which of `names` still exist.
  Result<std::vector<std::string>> Existing(
      const std::vector<std::string>& names);

  std::string LogPath(const std::string& job, int attempt) const;
  Doorbell& doorbell() { return *doorbell_; }

 private:
  LocalJobStore(std::string data_dir, std::unique_ptr<Database> db,
                std::unique_ptr<Doorbell> doorbell, Clock& clock,
                std::string queue_label)
      : data_dir_(std::move(data_dir)),
        queue_label_(std::move(queue_label)),
        db_(std::move(db)),
        doorbell_(std::move(doorbell)),
        clock_(clock) {}
  Result<Job> LoadLocked(const std::string& name);
  struct AttemptRecord {
    int n = 0;
    std::string outcome;  // "running", "exit code 3, DeadlineExceeded"
    bool finished = false;
  };
  struct AttemptRecords {
    bool job_finished = false;
    std::vector<AttemptRecord> attempts;  // oldest first
  };
  Result<AttemptRecords> LoadAttempts(const std::string& name);
  Status ApplyFinishedLocked(const Finished& f,
                             const ExponentialBackoff& backoff);
  Status ApplyStartedLocked(const Started& s);
  Status SaveLocked(const Job& job, bool finished, Millis now,
                    const std::optional<int>& ttl);

  const std::string data_dir_;
  const std::string queue_label_;  // "" = every queue's Jobs
  std::mutex mu_;
  std::unique_ptr<Database> db_;
  std::unique_ptr<Doorbell> doorbell_;
  Clock& clock_;
};

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_JOB_STORE_H_
