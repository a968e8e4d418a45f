#include "local/executor.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <vector>

#include "core/log.h"

namespace cruncher::local {
namespace {

constexpr Millis kHousekeepingInterval = 1'000;

}  // namespace

LocalExecutor::LocalExecutor(LocalJobStore& store, ExecutorOptions options,
                             Clock& clock)
    : store_(store),
      options_(options),
      backoff_(ExponentialBackoff{}.Scaled(options.backoff_scale)),
      clock_(clock) {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

LocalExecutor::~LocalExecutor() {
  Stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status LocalExecutor::Start() {
  if (wake_fd_ < 0) return Unavailable("eventfd for the executor failed");
  if (options_.slots < 1) return InvalidArgument("slots must be at least 1");
  CRUNCHER_ASSIGN_OR_RETURN(auto recovered,
                            store_.RecoverInterrupted(clock_.NowMillis()));
  for (const auto& name : recovered) {
    Log(LogLevel::kWarn, "attempt_interrupted",
        {{"job", name},
         {"reason", "the executor stopped while it ran; running it again"}});
  }
  int fd = wake_fd_;
  store_.doorbell().SetListener([fd] {
    uint64_t one = 1;
    (void)!::write(fd, &one, sizeof one);
  });
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void LocalExecutor::Stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
  thread_.join();
  store_.doorbell().SetListener(nullptr);
}

void LocalExecutor::Run() {
  std::vector<LocalJobStore::Finished> finished;
  while (!stopping_) {
    // One iteration, one transaction: the attempts that ended since the last
    // one and those started now are recorded together. While that commit
    // syncs, more attempts end, so the batches grow with the load.
    Millis now = clock_.NowMillis();
    std::vector<LocalJobStore::Started> started;
    std::vector<LocalJobStore::Finished> spawn_failed;
    StartDue(now, started, spawn_failed);
    Record(finished, started, now);
    // A failed spawn is recorded after its start, in the next transaction.
    finished = std::move(spawn_failed);

    std::vector<pollfd> fds;
    fds.push_back({wake_fd_, POLLIN, 0});
    for (const auto& [fd, attempt] : attempts_) fds.push_back({fd, POLLIN, 0});
    Millis wait = std::max<Millis>(0, NextWake(now) - now);
    int n = ::poll(fds.data(), fds.size(),
                   static_cast<int>(std::min<Millis>(wait, 60'000)));
    if (n < 0 && errno != EINTR) {
      Log(LogLevel::kError, "executor_poll_failed", {{"errno", errno}});
    }
    if (fds[0].revents) {
      uint64_t count;
      (void)!::read(wake_fd_, &count, sizeof count);
    }
    now = clock_.NowMillis();
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents) CollectExit(fds[i].fd, finished);
    }
    running_count_ = static_cast<int>(attempts_.size());
    EnforceDeadlines(now);
    if (now >= next_housekeeping_) Housekeep(now);
  }
  // Shutdown: stop every attempt and record it as interrupted, so the next
  // executor runs it again. Attempts that ended on their own keep their result.
  for (auto& [fd, attempt] : attempts_) {
    SignalProcessGroup(attempt.process, SIGKILL);
    ReapProcess(attempt.process);
    finished.push_back({attempt.job, attempt.number, {}, true});
  }
  attempts_.clear();
  running_count_ = 0;
  Record(finished, {}, clock_.NowMillis());
}

void LocalExecutor::Record(const std::vector<LocalJobStore::Finished>& finished,
                           const std::vector<LocalJobStore::Started>& started,
                           Millis now) {
  Status s = store_.RecordProgress(finished, started, now, backoff_);
  if (!s.ok()) {
    // The attempts ran; only their record is missing. Recovery on the next
    // start treats a Job still marked running as interrupted and re-runs it.
    Log(LogLevel::kError, "executor_record_failed", {{"error", s.ToString()}});
  }
}

void LocalExecutor::StartDue(
    Millis now, std::vector<LocalJobStore::Started>& started,
    std::vector<LocalJobStore::Finished>& spawn_failed) {
  int free_slots = options_.slots - static_cast<int>(attempts_.size());
  if (free_slots <= 0) return;
  auto due = store_.DueJobs(now, free_slots);
  if (!due.ok()) {
    Log(LogLevel::kError, "executor_store_failed",
        {{"error", due.status().ToString()}});
    return;
  }
  for (auto& r : *due) {
    const std::string name = r.job.name();
    if (r.started_at > 0 && r.spec.active_deadline_seconds &&
        now >= r.started_at + *r.spec.active_deadline_seconds * 1000LL) {
      Status s = store_.FailPending(
          name, "DeadlineExceeded",
          "Job was active longer than specified deadline", now);
      if (!s.ok())
        Log(LogLevel::kError, "executor_record_failed",
            {{"job", name}, {"error", s.ToString()}});
      continue;
    }
    std::error_code ec;
    std::filesystem::create_directories(
        std::filesystem::path(store_.LogPath(name, r.attempt)).parent_path(),
        ec);
    ProcessSpec spec{r.spec.argv, r.spec.env, r.spec.working_dir,
                     store_.LogPath(name, r.attempt)};
    spec.env.emplace_back("CRUNCHER_JOB_NAME", name);
    spec.env.emplace_back("CRUNCHER_ATTEMPT", std::to_string(r.attempt));
    auto child = SpawnProcess(spec);
    started.push_back({name, r.attempt});
    if (!child.ok()) {
      // Counted as a failed attempt so that backoffLimit bounds the retries.
      Log(LogLevel::kWarn, "attempt_spawn_failed",
          {{"job", name}, {"error", child.status().ToString()}});
      spawn_failed.push_back({name, r.attempt, {127, false}, false});
      continue;
    }
    Attempt attempt{name, r.attempt, *child, 0, 0, false, false};
    Millis first_start = r.started_at > 0 ? r.started_at : now;
    if (r.spec.active_deadline_seconds) {
      attempt.deadline = first_start + *r.spec.active_deadline_seconds * 1000LL;
    }
    attempts_.emplace(child->pidfd, std::move(attempt));
  }
  running_count_ = static_cast<int>(attempts_.size());
}

void LocalExecutor::CollectExit(
    int fd, std::vector<LocalJobStore::Finished>& finished) {
  auto it = attempts_.find(fd);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  int code = ReapProcess(a.process);
  finished.push_back({a.job, a.number, {code, a.deadline_exceeded}, false});
  attempts_.erase(it);
}

void LocalExecutor::Terminate(Attempt& attempt, Millis now) {
  if (attempt.kill_at != 0) return;
  SignalProcessGroup(attempt.process, SIGTERM);
  attempt.kill_at = now + options_.kill_grace;
}

void LocalExecutor::EnforceDeadlines(Millis now) {
  for (auto& [fd, a] : attempts_) {
    if (a.deadline != 0 && now >= a.deadline && !a.deadline_exceeded) {
      a.deadline_exceeded = true;
      Log(LogLevel::kInfo, "job_deadline_exceeded", {{"job", a.job}});
      Terminate(a, now);
    }
    if (a.kill_at != 0 && now >= a.kill_at && !a.sigkill_sent) {
      SignalProcessGroup(a.process, SIGKILL);
      a.sigkill_sent = true;  // its exit now wakes the loop through the pidfd
    }
  }
}

void LocalExecutor::Housekeep(Millis now) {
  next_housekeeping_ = now + kHousekeepingInterval;
  if (!attempts_.empty()) {
    std::vector<std::string> names;
    for (const auto& [fd, a] : attempts_) names.push_back(a.job);
    auto existing = store_.Existing(names);
    if (existing.ok()) {
      for (auto& [fd, a] : attempts_) {
        if (std::find(existing->begin(), existing->end(), a.job) ==
            existing->end()) {
          Log(LogLevel::kInfo, "attempt_stopped_job_deleted", {{"job", a.job}});
          Terminate(a, now);
        }
      }
    }
  }
  auto expired = store_.DeleteExpired(now);
  if (!expired.ok()) {
    Log(LogLevel::kError, "executor_ttl_failed",
        {{"error", expired.status().ToString()}});
  } else if (*expired > 0) {
    Log(LogLevel::kInfo, "jobs_deleted_after_ttl", {{"count", *expired}});
  }
}

Millis LocalExecutor::NextWake(Millis now) {
  Millis wake = next_housekeeping_ > now ? next_housekeeping_
                                         : now + kHousekeepingInterval;
  for (const auto& [fd, a] : attempts_) {
    if (a.deadline != 0 && !a.deadline_exceeded)
      wake = std::min(wake, a.deadline);
    if (a.kill_at != 0 && !a.sigkill_sent) wake = std::min(wake, a.kill_at);
  }
  if (static_cast<int>(attempts_.size()) < options_.slots) {
    auto due = store_.NextDueTime();
    // A few milliseconds at least: a due Job that could not start (a store
    // error, logged) must not turn this loop into a busy wait.
    if (due.ok() && *due > 0) wake = std::min(wake, std::max(*due, now + 5));
  }
  return wake;
}

}  // namespace cruncher::local
