// LocalExecutor: runs the Jobs of a LocalJobStore as local processes.
//
// One thread schedules: it starts due Jobs while fewer than `slots` attempts
// run (slots stand in for cluster capacity), learns of exits from a
// ProcessReaper, records every state change durably in the store (in
// batches, one transaction per wake-up), retries failed attempts with
// backoff, enforces activeDeadlineSeconds (SIGTERM to the process group,
// SIGKILL after a grace period), stops attempts of Jobs deleted meanwhile,
// and deletes finished Jobs whose ttlSecondsAfterFinished has passed. It
// waits through its Clock until the next timer or a wake-up (a ring of the
// job doorbell, an exit, Stop), so tests drive its timers with a FakeClock.
//
// When the store cannot record progress (disk full, I/O error, busy past the
// timeout) nothing is lost: the unrecorded starts and finishes stay in
// memory, in order, and are recorded again on the next wake-up, with
// exponential backoff (100 ms doubling to 5 s) while it keeps failing. No
// new attempt starts meanwhile, and never one for a Job whose process is
// still alive, so an attempt never runs twice. Repeated identical errors are
// logged once per 10 s with the number suppressed. Progress still
// unrecorded at Stop is logged; the next Start re-runs those Jobs (a Job
// recorded as running is recovered as interrupted, one never recorded as
// started is still pending).
//
// A task's environment is the template's `env` (with $(VAR) expanded),
// CRUNCHER_JOB_NAME and CRUNCHER_ATTEMPT, on top of a minimal base taken
// from the executor's own environment: PATH (default /usr/local/bin:
// /usr/bin:/bin), HOME, LANG, LC_ALL, TZ and TMPDIR when set. Nothing else
// of the executor's reaches the task, in particular no AWS_* credentials or
// CRUNCHER_* settings: a Pod, likewise, gets only its template's env.
//
// Only one executor may run per data directory; the caller holds the data
// directory's lock (DATA_DIR/executor.lock, see src/cli/local_runtime.h). On
// Start, attempts a previous executor left running are recorded as
// interrupted and run again.
//
// Thread-safety: Start and Stop from one thread; the store may be used by
// others meanwhile.
#ifndef CRUNCHER_LOCAL_EXECUTOR_H_
#define CRUNCHER_LOCAL_EXECUTOR_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/log.h"
#include "local/data_dir.h"
#include "local/job_store.h"
#include "local/process.h"

namespace cruncher::local {

struct ExecutorOptions {
  int slots = 8;
  // Multiplies the retry backoff (10 s, 20 s, ... 6 min); demos use 0.1.
  double backoff_scale = 1.0;
  Millis kill_grace = 5'000;  // SIGTERM → SIGKILL
  // Whether the filesystem of a log file is full (data_dir.h; a test seam).
  // The task writes its output to the log file itself, so a full data disk
  // fails the task (a write error, exit 1) without a word in its log: a
  // failed attempt whose log's filesystem is full when it exits records
  // "log: no space left on device at PATH" as its reason.
  std::function<bool(const std::string& path)> filesystem_full = FilesystemFull;
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
    Millis deadline = 0;  // 0 = none
    Millis kill_at = 0;   // SIGKILL time after SIGTERM, 0 = not sent
    bool sigkill_sent = false;
    bool deadline_exceeded = false;
  };
  void Run();
  // Interrupts the current or next wait of the scheduling thread.
  void Wake();
  // A fresh wake-up signal for the next wait; wake-ups before this call
  // were for work the caller is about to look at anyway.
  std::stop_token ResetWake();
  // Starts due Jobs in free slots; appends their starts (and the failures
  // of those that could not start) to unrecorded_.
  void StartDue(Millis now);
  void CollectExits(Millis now);
  // Records unrecorded_; keeps it and backs off if the store fails.
  void Flush(Millis now);
  void StoreFailed(Millis now, std::string_view event, const Status& status);
  void EnforceDeadlines(Millis now);
  void Housekeep(Millis now);
  void Terminate(pid_t pid, Attempt& attempt, Millis now);
  Millis NextWake(Millis now);
  void Shutdown();

  LocalJobStore& store_;
  const ExecutorOptions options_;
  const ExponentialBackoff backoff_;
  Clock& clock_;
  LogLimiter log_limiter_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> running_count_{0};
  std::mutex wake_mu_;
  std::stop_source wake_;  // guarded by wake_mu_
  // Calls Wake from its thread: declared after what Wake uses, and reset by
  // Stop, so that it is gone before they are.
  std::unique_ptr<ProcessReaper> reaper_;

  // Scheduler thread only.
  std::map<pid_t, Attempt> attempts_;
  std::vector<LocalJobStore::Progress> unrecorded_;  // in order
  int store_failures_ = 0;  // consecutive failed writes or reads
  Millis store_retry_at_ = 0;
  Millis next_housekeeping_ = 0;
  std::thread thread_;
};

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_EXECUTOR_H_
