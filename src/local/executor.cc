#include "local/executor.h"

#include <signal.h>

#include <algorithm>
#include <filesystem>

#include "local/data_dir.h"

namespace cruncher::local {
namespace {

constexpr Millis kHousekeepingInterval = 1'000;
// While the store fails, progress is recorded again after these delays.
constexpr ExponentialBackoff kStoreRetry{100, 5'000};
constexpr Millis kRepeatedErrorInterval = 10'000;

const std::string& JobOf(const LocalJobStore::Progress& p) {
  return std::visit(
      [](const auto& step) -> const std::string& { return step.job; }, p);
}

}  // namespace

LocalExecutor::LocalExecutor(LocalJobStore& store, ExecutorOptions options,
                             Clock& clock)
    : store_(store),
      options_(options),
      backoff_(ExponentialBackoff{}.Scaled(options.backoff_scale)),
      clock_(clock),
      log_limiter_(kRepeatedErrorInterval) {}

LocalExecutor::~LocalExecutor() {
  Stop();
  reaper_.reset();
}

Status LocalExecutor::Start() {
  if (options_.slots < 1) return InvalidArgument("slots must be at least 1");
  if (!reaper_) {
    CRUNCHER_ASSIGN_OR_RETURN(reaper_,
                              ProcessReaper::Create([this] { Wake(); }));
  }
  CRUNCHER_ASSIGN_OR_RETURN(auto recovered,
                            store_.RecoverInterrupted(clock_.NowMillis()));
  for (const auto& name : recovered) {
    Log(LogLevel::kWarn, "attempt_interrupted",
        {{"job", name},
         {"reason", "the executor stopped while it ran; running it again"}});
  }
  store_.doorbell().SetListener([this] { Wake(); });
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void LocalExecutor::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  Wake();
  thread_.join();
  store_.doorbell().SetListener(nullptr);
  reaper_.reset();  // every attempt was reaped at shutdown
}

void LocalExecutor::Wake() {
  std::lock_guard<std::mutex> lock(wake_mu_);
  wake_.request_stop();
}

std::stop_token LocalExecutor::ResetWake() {
  std::lock_guard<std::mutex> lock(wake_mu_);
  wake_ = std::stop_source();
  return wake_.get_token();
}

void LocalExecutor::Run() {
  for (;;) {
    // Reset before looking at anything, so that a wake-up for work arriving
    // from now on interrupts the wait below.
    std::stop_token wake = ResetWake();
    // Checked after the reset: Stop sets the flag before it wakes.
    if (stopping_) break;
    Millis now = clock_.NowMillis();
    CollectExits(now);
    EnforceDeadlines(now);
    if (now >= next_housekeeping_) Housekeep(now);
    if (store_failures_ > 0 && now >= store_retry_at_) Flush(now);
    if (store_failures_ == 0) {
      // One wake-up, one transaction: the attempts that ended since the
      // last one and those started now are recorded together. While that
      // commit syncs, more attempts end, so the batches grow with the load.
      StartDue(now);
      Flush(now);
    }
    running_count_ = static_cast<int>(attempts_.size());
    clock_.SleepUntil(NextWake(now), wake);
  }
  Shutdown();
}

void LocalExecutor::Shutdown() {
  // Stop every attempt and record it as interrupted, so the next executor
  // runs it again. Attempts that ended on their own keep their result.
  Millis now = clock_.NowMillis();
  CollectExits(now);
  for (auto& [pid, attempt] : attempts_) {
    if (auto code = reaper_->KillAndWait(pid)) {
      unrecorded_.push_back(LocalJobStore::Finished{
          attempt.job, attempt.number, {*code, false}, true, now});
    }
  }
  CollectExits(now);  // those that ended before the kill reached them
  attempts_.clear();
  running_count_ = 0;
  Flush(now);
  if (!unrecorded_.empty()) {
    Log(LogLevel::kError, "executor_progress_unrecorded",
        {{"steps", unrecorded_.size()},
         {"consequence", "the next start runs these Jobs' attempts again"}});
    unrecorded_.clear();
  }
  store_failures_ = 0;
}

void LocalExecutor::Flush(Millis now) {
  Status s = store_.RecordProgress(unrecorded_, backoff_);
  if (!s.ok()) {
    StoreFailed(now, "executor_record_failed", s);
    return;
  }
  unrecorded_.clear();
  if (store_failures_ > 0) {
    Log(LogLevel::kInfo, "executor_store_recovered",
        {{"failures", store_failures_}});
    store_failures_ = 0;
  }
}

void LocalExecutor::StoreFailed(Millis now, std::string_view event,
                                const Status& status) {
  ++store_failures_;
  store_retry_at_ = now + kStoreRetry.Delay(store_failures_);
  log_limiter_.Log(LogLevel::kError, event,
                   {{"error", status.ToString()},
                    {"unrecorded_steps", unrecorded_.size()},
                    {"retry", "kept in memory and recorded again"}},
                   now);
}

void LocalExecutor::StartDue(Millis now) {
  int free_slots = options_.slots - static_cast<int>(attempts_.size());
  if (free_slots <= 0) return;
  // Jobs with a live process or unrecorded progress may look due in the
  // store; they are skipped, so ask for that many more.
  auto busy = [&](const std::string& name) {
    return std::any_of(attempts_.begin(), attempts_.end(),
                       [&](const auto& a) { return a.second.job == name; }) ||
           std::any_of(unrecorded_.begin(), unrecorded_.end(),
                       [&](const auto& p) { return JobOf(p) == name; });
  };
  auto due = store_.DueJobs(
      now,
      free_slots + static_cast<int>(attempts_.size() + unrecorded_.size()));
  if (!due.ok()) {
    StoreFailed(now, "executor_store_failed", due.status());
    return;
  }
  for (auto& r : *due) {
    if (free_slots <= 0) break;
    const std::string name = r.job.name();
    if (busy(name)) continue;
    if (r.started_at > 0 && r.spec.active_deadline_seconds &&
        now >= r.started_at + *r.spec.active_deadline_seconds * 1000LL) {
      Status s = store_.FailPending(
          name, "DeadlineExceeded",
          "Job was active longer than specified deadline", now);
      if (!s.ok()) {
        StoreFailed(now, "executor_record_failed", s);
        return;
      }
      continue;
    }
    // A failure here fails the spawn, which names the log file.
    std::filesystem::path log_dir =
        std::filesystem::path(store_.LogPath(name, r.attempt)).parent_path();
    (void)MakePrivateDir(log_dir.parent_path());
    (void)MakePrivateDir(log_dir);
    ProcessSpec spec{r.spec.argv, r.spec.env, r.spec.working_dir,
                     store_.LogPath(name, r.attempt)};
    spec.env.emplace_back("CRUNCHER_JOB_NAME", name);
    spec.env.emplace_back("CRUNCHER_ATTEMPT", std::to_string(r.attempt));
    auto child = SpawnProcess(spec);
    unrecorded_.push_back(LocalJobStore::Started{name, r.attempt, now});
    --free_slots;
    if (!child.ok()) {
      // Counted as a failed attempt so that backoffLimit bounds the retries.
      Log(LogLevel::kWarn, "attempt_spawn_failed",
          {{"job", name}, {"error", child.status().ToString()}});
      unrecorded_.push_back(LocalJobStore::Finished{
          name,
          r.attempt,
          {127, false, "cannot start: " + child.status().message()},
          false,
          now});
      continue;
    }
    Attempt attempt{name, r.attempt, 0, 0, false, false};
    Millis first_start = r.started_at > 0 ? r.started_at : now;
    if (r.spec.active_deadline_seconds) {
      attempt.deadline = first_start + *r.spec.active_deadline_seconds * 1000LL;
    }
    attempts_.emplace(child->pid, std::move(attempt));
    reaper_->Watch(*child);
  }
  running_count_ = static_cast<int>(attempts_.size());
}

void LocalExecutor::CollectExits(Millis now) {
  for (const auto& [pid, code] : reaper_->TakeExits()) {
    auto it = attempts_.find(pid);
    if (it == attempts_.end()) continue;
    const Attempt& a = it->second;
    AttemptResult result(code, a.deadline_exceeded);
    if (code != 0 && !a.deadline_exceeded) {
      const std::string log = store_.LogPath(a.job, a.number);
      if (options_.filesystem_full(log)) {
        result.platform_error = "log: no space left on device at " + log;
        Log(LogLevel::kWarn, "attempt_log_disk_full",
            {{"job", a.job}, {"attempt", a.number}, {"log", log}});
      }
    }
    unrecorded_.push_back(
        LocalJobStore::Finished{a.job, a.number, result, false, now});
    attempts_.erase(it);
  }
  // Before the finishes are recorded: a Job seen finished is not counted.
  running_count_ = static_cast<int>(attempts_.size());
}

void LocalExecutor::Terminate(pid_t pid, Attempt& attempt, Millis now) {
  if (attempt.kill_at != 0) return;
  reaper_->Signal(pid, SIGTERM);
  attempt.kill_at = now + options_.kill_grace;
}

void LocalExecutor::EnforceDeadlines(Millis now) {
  for (auto& [pid, a] : attempts_) {
    if (a.deadline != 0 && now >= a.deadline && !a.deadline_exceeded) {
      a.deadline_exceeded = true;
      Log(LogLevel::kInfo, "job_deadline_exceeded", {{"job", a.job}});
      Terminate(pid, a, now);
    }
    if (a.kill_at != 0 && now >= a.kill_at && !a.sigkill_sent) {
      reaper_->Signal(pid, SIGKILL);
      a.sigkill_sent = true;  // its exit wakes the loop through the reaper
    }
  }
}

void LocalExecutor::Housekeep(Millis now) {
  next_housekeeping_ = now + kHousekeepingInterval;
  if (!attempts_.empty()) {
    std::vector<std::string> names;
    for (const auto& [pid, a] : attempts_) names.push_back(a.job);
    auto existing = store_.Existing(names);
    if (existing.ok()) {
      for (auto& [pid, a] : attempts_) {
        if (std::find(existing->begin(), existing->end(), a.job) ==
            existing->end()) {
          Log(LogLevel::kInfo, "attempt_stopped_job_deleted", {{"job", a.job}});
          Terminate(pid, a, now);
        }
      }
    }
  }
  auto expired = store_.DeleteExpired(now);
  if (!expired.ok()) {
    log_limiter_.Log(LogLevel::kError, "executor_ttl_failed",
                     {{"error", expired.status().ToString()}}, now);
  } else if (*expired > 0) {
    Log(LogLevel::kInfo, "jobs_deleted_after_ttl", {{"count", *expired}});
  }
}

Millis LocalExecutor::NextWake(Millis now) {
  Millis wake = next_housekeeping_ > now ? next_housekeeping_
                                         : now + kHousekeepingInterval;
  for (const auto& [pid, a] : attempts_) {
    if (a.deadline != 0 && !a.deadline_exceeded)
      wake = std::min(wake, a.deadline);
    if (a.kill_at != 0 && !a.sigkill_sent) wake = std::min(wake, a.kill_at);
  }
  if (store_failures_ > 0) return std::min(wake, store_retry_at_);
  if (static_cast<int>(attempts_.size()) < options_.slots) {
    auto due = store_.NextDueTime();
    // A due Job that is skipped (its previous process has not exited yet)
    // must not turn this loop into a busy wait: its exit wakes the loop.
    if (due.ok() && *due > now) wake = std::min(wake, *due);
  }
  return wake;
}

}  // namespace cruncher::local
