// LocalExecutor: runs the Jobs of a LocalJobStore as local processes.
//
// One thread schedules: it starts due Jobs while fewer than `slots` attempts
// run (slots stand in for cluster capacity), waits for exits on pidfds,
// records every state change durably in the store (in batches, one
// transaction per wake-up), retries failed attempts with backoff, enforces
// activeDeadlineSeconds (SIGTERM to the process group, SIGKILL after a grace
// period), stops attempts of Jobs deleted meanwhile, and deletes finished
// Jobs whose ttlSecondsAfterFinished has passed.
//
// Only one executor may run per data directory; the caller holds the data
// directory's lock (see data_dir_lock.h). On Start, attempts a previous
// executor left running are recorded as interrupted and run again.
//
// Thread-safety: Start and Stop from one thread; the store may be used by
// others meanwhile.
#ifndef CRUNCHER_LOCAL_EXECUTOR_H_
#define CRUNCHER_LOCAL_EXECUTOR_H_

#include <atomic>
#include <map>
#include <string>
#include <thread>

#include "core/backoff.h"
#include "core/clock.h"
#include "local/job_store.h"
#include "local/process.h"

namespace cruncher::local {

struct ExecutorOptions {
  int slots = 8;
  // Multiplies the retry backoff (10 s, 20 s, ... 6 min); demos use 0.1.
  double backoff_scale = 1.0;
  Millis kill_grace = 5'000;  // SIGTERM → SIGKILL
};

class LocalExecutor {
 public:
  LocalExecutor(LocalJobStore& store, ExecutorOptions options,
                Clock& clock = SystemClock::Get());
  ~LocalExecutor();
  LocalExecutor(const LocalExecutor&) = delete;
  LocalExecutor& operator=(const LocalExecutor&) = delete;

  // Recovers interrupted attempts, then starts the scheduling thread.
  Status Start();
  // Stops the thread; running attempts are killed and recorded as
  // interrupted, so the next Start runs them again.
  void Stop();

  // Number of attempts running now.
  int running() const { return running_count_.load(); }

 private:
  struct Attempt {
    std::string job;
    int number = 0;
    ChildProcess process;
    Millis deadline = 0;  // 0 = none
    Millis kill_at = 0;   // SIGKILL time after SIGTERM, 0 = not sent
    bool sigkill_sent = false;
    bool deadline_exceeded = false;
  };
  void Run();
  // Starts due Jobs in free slots; appends to `started`, and to
  // `spawn_failed` the attempts that could not start (counted as failed).
  void StartDue(Millis now, std::vector<LocalJobStore::Started>& started,
                std::vector<LocalJobStore::Finished>& spawn_failed);
  // Reaps the attempt whose pidfd is readable.
  void CollectExit(int fd, std::vector<LocalJobStore::Finished>& finished);
  void Record(const std::vector<LocalJobStore::Finished>& finished,
              const std::vector<LocalJobStore::Started>& started, Millis now);
  void EnforceDeadlines(Millis now);
  void Housekeep(Millis now);
  void Terminate(Attempt& attempt, Millis now);
  Millis NextWake(Millis now);

  LocalJobStore& store_;
  const ExecutorOptions options_;
  const ExponentialBackoff backoff_;
  Clock& clock_;
  int wake_fd_ = -1;  // eventfd: the job doorbell and Stop write to it
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_count_{0};
  std::map<int, Attempt> attempts_;  // by pidfd; scheduler thread only
  Millis next_housekeeping_ = 0;
  std::thread thread_;
};

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_EXECUTOR_H_
