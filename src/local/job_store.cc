#include "local/job_store.h"

#include <filesystem>
#include <system_error>

#include "core/job_name.h"
#include "core/random_id.h"
#include "local/data_dir.h"
#include "local/log_file.h"

namespace cruncher::local {
namespace {

using nlohmann::json;

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS jobs(
  name TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  finished INTEGER NOT NULL DEFAULT 0,
  running INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  started_at INTEGER NOT NULL DEFAULT 0,
  expire_at INTEGER,
  object TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(finished, running, next_attempt_at);
CREATE TABLE IF NOT EXISTS attempts(
  job TEXT NOT NULL REFERENCES jobs(name) ON DELETE CASCADE,
  n INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  finished_at INTEGER,
  exit_code INTEGER,
  reason TEXT,
  PRIMARY KEY(job, n));
)sql";

// The cruncher.dev/queue label of a row's Job, in SQL.
constexpr std::string_view kQueueLabelOfObject =
    "json_extract(object, '$.metadata.labels.\"cruncher.dev/queue\"')";

Result<Job> ParseJob(const std::string& text) {
  auto object = json::parse(text, nullptr, false);
  if (object.is_discarded()) return Internal("stored job is not valid JSON");
  return Job::FromJson(std::move(object));
}

// A Job with the columns the executor schedules by.
struct JobRow {
  Job job;
  bool finished = false;
  bool running = false;
  int attempts = 0;  // attempts started so far
};

// nullopt if the Job does not exist.
Result<std::optional<JobRow>> LoadRow(Database& db, const std::string& name) {
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db.Prepare("SELECT object, finished, running, attempts "
                               "FROM jobs WHERE name=?"));
  st.Bind(1, name);
  if (!st.Step()) {
    CRUNCHER_RETURN_IF_ERROR(st.status());
    return std::optional<JobRow>();
  }
  CRUNCHER_ASSIGN_OR_RETURN(Job job, ParseJob(st.Text(0)));
  return std::optional<JobRow>(JobRow{std::move(job), st.Int(1) != 0,
                                      st.Int(2) != 0,
                                      static_cast<int>(st.Int(3))});
}

}  // namespace

Result<std::unique_ptr<LocalJobStore>> LocalJobStore::Open(
    const std::string& data_dir, Durability durability, Clock& clock,
    std::string queue_label) {
  CRUNCHER_RETURN_IF_ERROR(PrepareDataDir(data_dir));
  CRUNCHER_RETURN_IF_ERROR(MakePrivateDir(data_dir + "/logs"));
  CRUNCHER_ASSIGN_OR_RETURN(auto doorbell,
                            Doorbell::Open(data_dir + "/jobs.doorbell"));
  CRUNCHER_ASSIGN_OR_RETURN(
      auto db, Database::Open(data_dir + "/cruncher.db", durability));
  CRUNCHER_RETURN_IF_ERROR(
      db->EnsureSchema(kSchema, {"jobs", "jobs_due", "attempts"}));
  return std::unique_ptr<LocalJobStore>(
      new LocalJobStore(data_dir, std::move(db), std::move(doorbell), clock,
                        std::move(queue_label)));
}

std::string LocalJobStore::LogPath(const std::string& job, int attempt) const {
  return data_dir_ + "/logs/" + job + "/attempt-" + std::to_string(attempt) +
         ".log";
}

Status LocalJobStore::Create(const json& manifest) {
  return CreateBatch({manifest}).front();
}

// One quick transaction: `cancel` has nothing to end.
std::vector<Status> LocalJobStore::CreateBatch(
    const std::vector<json>& manifests, const std::stop_token& /*cancel*/) {
  std::vector<Status> results(manifests.size());
  std::vector<std::pair<size_t, json>> valid;
  Millis now = clock_.NowMillis();
  for (size_t i = 0; i < manifests.size(); ++i) {
    auto parsed = Job::FromJson(manifests[i]);
    if (!parsed.ok()) {
      results[i] = parsed.status();
      continue;
    }
    auto spec = LocalRunSpec::FromJob(manifests[i]);
    if (!spec.ok()) {
      results[i] = spec.status().WithContext("job " + parsed->name());
      continue;
    }
    json object = manifests[i];
    InitializeJob(object, now, RandomUuid());
    valid.emplace_back(i, std::move(object));
  }
  if (valid.empty()) return results;
  auto fail_valid = [&](const Status& s) {
    for (const auto& [i, object] : valid) results[i] = s;
    return results;
  };
  bool created_any = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(*db_);
    if (Status s = tx.Begin(); !s.ok()) return fail_valid(s);
    auto st = db_->Prepare(
        "INSERT INTO jobs(name, created_at, next_attempt_at, object) "
        "VALUES(?,?,?,?) ON CONFLICT(name) DO NOTHING");
    if (!st.ok()) return fail_valid(st.status());
    for (const auto& [i, object] : valid) {
      const std::string name = object["metadata"]["name"].get<std::string>();
      st->Reset();
      st->Bind(1, name).Bind(2, now).Bind(3, now).Bind(4, object.dump());
      if (Status s = st->Run(); !s.ok()) {
        return fail_valid(s.WithContext("create job " + name));
      }
      if (db_->changes() == 0) {
        results[i] = AlreadyExists("job " + name + " already exists");
      } else {
        created_any = true;
      }
    }
    if (Status s = tx.Commit(); !s.ok()) return fail_valid(s);
  }
  if (created_any) doorbell_->Ring();
  return results;
}

Result<Job> LocalJobStore::LoadLocked(const std::string& name) {
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare("SELECT object FROM jobs WHERE name=?"));
  st.Bind(1, name);
  if (!st.Step()) {
    CRUNCHER_RETURN_IF_ERROR(st.status());
    return NotFound("job " + name + " not found");
  }
  return ParseJob(st.Text(0));
}

Result<Job> LocalJobStore::Get(const std::string& name) {
  CRUNCHER_RETURN_IF_ERROR(CheckJobName(name));
  std::lock_guard<std::mutex> lock(mu_);
  return LoadLocked(name);
}

Result<std::vector<Job>> LocalJobStore::List() {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare("SELECT object FROM jobs WHERE ?1='' OR " +
                                 std::string(kQueueLabelOfObject) +
                                 "=?1 ORDER BY created_at, rowid"));
  st.Bind(1, queue_label_);
  std::vector<Job> jobs;
  while (st.Step()) {
    CRUNCHER_ASSIGN_OR_RETURN(Job job, ParseJob(st.Text(0)));
    jobs.push_back(std::move(job));
  }
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return jobs;
}

Status LocalJobStore::Delete(const std::string& name) {
  CRUNCHER_RETURN_IF_ERROR(CheckJobName(name));
  {
    std::lock_guard<std::mutex> lock(mu_);
    CRUNCHER_ASSIGN_OR_RETURN(Statement st,
                              db_->Prepare("DELETE FROM jobs WHERE name=?"));
    st.Bind(1, name);
    CRUNCHER_RETURN_IF_ERROR(st.Run().WithContext("delete job " + name));
    if (db_->changes() == 0) return NotFound("job " + name + " not found");
  }
  std::error_code ec;
  std::filesystem::remove_all(data_dir_ + "/logs/" + name, ec);
  // The executor watches the doorbell and stops a deleted Job's attempt.
  doorbell_->Ring();
  return Status::Ok();
}

Result<int> LocalJobStore::CountUnfinished() {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("SELECT COUNT(*) FROM jobs WHERE finished=0 AND (?1='' OR " +
                   std::string(kQueueLabelOfObject) + "=?1)"));
  st.Bind(1, queue_label_);
  int count = st.Step() ? static_cast<int>(st.Int(0)) : 0;
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return count;
}

Result<LocalJobStore::AttemptRecords> LocalJobStore::LoadAttempts(
    const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  AttemptRecords records;
  CRUNCHER_ASSIGN_OR_RETURN(Job job, LoadLocked(name));
  records.job_finished = job.finished();
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("SELECT n, exit_code, reason, finished_at FROM attempts "
                   "WHERE job=? ORDER BY n"));
  st.Bind(1, name);
  while (st.Step()) {
    std::string outcome =
        st.IsNull(1) ? "running" : "exit code " + std::to_string(st.Int(1));
    if (!st.IsNull(2)) outcome += ", " + st.Text(2);
    records.attempts.push_back(
        {static_cast<int>(st.Int(0)), outcome, !st.IsNull(3)});
  }
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return records;
}

Status LocalJobStore::StreamLogs(const std::string& name,
                                 const LogOptions& options, LogSink& sink,
                                 std::stop_token stop) {
  CRUNCHER_RETURN_IF_ERROR(CheckJobName(name));
  int next = 1;  // the first attempt whose output is not fully read
  std::unique_ptr<LogFileReader> reader;  // of attempt `next`, once begun
  while (true) {
    CRUNCHER_ASSIGN_OR_RETURN(AttemptRecords records, LoadAttempts(name));
    bool waiting = false;  // on an attempt that may still write
    for (const AttemptRecord& a : records.attempts) {
      if (a.n < next) continue;
      if (!reader) {
        sink.BeginAttempt("attempt-" + std::to_string(a.n) + " (" + a.outcome +
                          ")");
        reader = std::make_unique<LogFileReader>(LogPath(name, a.n),
                                                 options.tail_lines);
      }
      // Finished before this read began: what the read finds is all of it.
      // (A finished Job has no live attempt, whatever its records say.)
      const bool complete = a.finished || records.job_finished;
      CRUNCHER_RETURN_IF_ERROR(reader->ReadNew(sink));
      if (!complete) {
        waiting = true;
        break;
      }
      reader.reset();
      next = a.n + 1;
    }
    if (!options.follow || (records.job_finished && !waiting)) {
      return Status::Ok();
    }
    if (!clock_.SleepFor(kFollowPollMillis, stop)) return Status::Ok();
  }
}

Result<std::vector<LocalJobStore::Runnable>> LocalJobStore::DueJobs(Millis now,
                                                                    int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("SELECT object, attempts, started_at FROM jobs "
                   "WHERE finished=0 AND running=0 AND next_attempt_at<=? "
                   "ORDER BY next_attempt_at, rowid LIMIT ?"));
  st.Bind(1, now).Bind(2, limit);
  std::vector<Runnable> due;
  while (st.Step()) {
    CRUNCHER_ASSIGN_OR_RETURN(Job job, ParseJob(st.Text(0)));
    // Create validated the spec; a failure here means the record changed.
    CRUNCHER_ASSIGN_OR_RETURN(LocalRunSpec spec,
                              LocalRunSpec::FromJob(job.json()));
    due.push_back({std::move(job), std::move(spec),
                   static_cast<int>(st.Int(1)) + 1, st.Int(2)});
  }
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return due;
}

Result<Millis> LocalJobStore::NextDueTime() {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare("SELECT MIN(next_attempt_at) FROM jobs "
                                 "WHERE finished=0 AND running=0"));
  Millis next = st.Step() && !st.IsNull(0) ? st.Int(0) : 0;
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return next;
}

Status LocalJobStore::SaveLocked(const Job& job, bool finished, Millis now,
                                 const std::optional<int>& ttl) {
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("UPDATE jobs SET object=?, finished=?, running=0, "
                   "expire_at=? WHERE name=?"));
  st.Bind(1, job.json().dump()).Bind(2, finished ? 1 : 0);
  if (finished && ttl) {
    st.Bind(3, now + *ttl * 1000LL);
  } else {
    st.BindNull(3);
  }
  st.Bind(4, job.name());
  return st.Run();
}

Status LocalJobStore::ApplyStartedLocked(const Started& s) {
  CRUNCHER_ASSIGN_OR_RETURN(auto row, LoadRow(*db_, s.job));
  // Deleted meanwhile (the executor stops the attempt), or recorded already.
  if (!row || row->finished || row->running || row->attempts != s.attempt - 1)
    return Status::Ok();
  MarkAttemptStarted(row->job.mutable_json(), s.at);
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement upd,
      db_->Prepare("UPDATE jobs SET object=?, running=1, attempts=?, "
                   "started_at=CASE WHEN started_at=0 THEN ? ELSE started_at "
                   "END WHERE name=?"));
  upd.Bind(1, row->job.json().dump())
      .Bind(2, s.attempt)
      .Bind(3, s.at)
      .Bind(4, s.job);
  CRUNCHER_RETURN_IF_ERROR(upd.Run());
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement ins,
      db_->Prepare("INSERT OR REPLACE INTO attempts(job, n, started_at) "
                   "VALUES(?,?,?)"));
  ins.Bind(1, s.job).Bind(2, s.attempt).Bind(3, s.at);
  return ins.Run();
}

Status LocalJobStore::ApplyFinishedLocked(const Finished& f,
                                          const ExponentialBackoff& backoff) {
  CRUNCHER_ASSIGN_OR_RETURN(auto row, LoadRow(*db_, f.job));
  // Only the attempt running now can finish: a finish recorded already (a
  // retried batch) must not add a second Complete or Failed condition.
  if (!row || row->finished || !row->running || row->attempts != f.attempt)
    return Status::Ok();
  Job& job = row->job;
  const Millis now = f.at;
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement attempt,
      db_->Prepare("UPDATE attempts SET finished_at=?, exit_code=?, reason=? "
                   "WHERE job=? AND n=?"));
  attempt.Bind(1, now).Bind(2, f.result.exit_code);
  if (f.interrupted) {
    attempt.Bind(3, "ExecutorRestarted: stopped with the executor; re-run");
  } else if (f.result.deadline_exceeded) {
    attempt.Bind(3, "DeadlineExceeded");
  } else if (!f.result.platform_error.empty()) {
    attempt.Bind(3, f.result.platform_error);
  } else {
    attempt.BindNull(3);
  }
  attempt.Bind(4, f.job).Bind(5, f.attempt);
  CRUNCHER_RETURN_IF_ERROR(attempt.Run());
  std::optional<Millis> next = now;
  if (f.interrupted) {
    MarkAttemptInterrupted(job.mutable_json());
  } else {
    auto spec = LocalRunSpec::FromJob(job.json());
    if (!spec.ok()) return spec.status().WithContext("job " + f.job);
    next =
        MarkAttemptFinished(job.mutable_json(), *spec, f.result, now, backoff);
    if (!next)
      return SaveLocked(job, true, now, spec->ttl_seconds_after_finished);
  }
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement retry,
      db_->Prepare("UPDATE jobs SET object=?, running=0, next_attempt_at=? "
                   "WHERE name=?"));
  retry.Bind(1, job.json().dump()).Bind(2, *next).Bind(3, f.job);
  return retry.Run();
}

Status LocalJobStore::RecordProgress(const std::vector<Progress>& progress,
                                     const ExponentialBackoff& backoff) {
  if (progress.empty()) return Status::Ok();
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(*db_);
  CRUNCHER_RETURN_IF_ERROR(tx.Begin());
  for (const auto& step : progress) {
    if (const auto* s = std::get_if<Started>(&step)) {
      CRUNCHER_RETURN_IF_ERROR(ApplyStartedLocked(*s));
    } else {
      CRUNCHER_RETURN_IF_ERROR(
          ApplyFinishedLocked(std::get<Finished>(step), backoff));
    }
  }
  return tx.Commit();
}

Status LocalJobStore::FailPending(const std::string& name,
                                  const std::string& reason,
                                  const std::string& message, Millis now) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(*db_);
  CRUNCHER_RETURN_IF_ERROR(tx.Begin());
  CRUNCHER_ASSIGN_OR_RETURN(auto row, LoadRow(*db_, name));
  if (!row || row->finished || row->running) return Status::Ok();
  Job& job = row->job;
  auto spec = LocalRunSpec::FromJob(job.json());
  MarkFailed(job.mutable_json(), reason, message, now);
  CRUNCHER_RETURN_IF_ERROR(
      SaveLocked(job, true, now,
                 spec.ok() ? spec->ttl_seconds_after_finished : std::nullopt));
  return tx.Commit();
}

Result<std::vector<std::string>> LocalJobStore::RecoverInterrupted(Millis now) {
  std::vector<Progress> interrupted;
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> lock(mu_);
    CRUNCHER_ASSIGN_OR_RETURN(
        Statement st,
        db_->Prepare("SELECT name, attempts FROM jobs WHERE running=1"));
    while (st.Step()) {
      names.push_back(st.Text(0));
      interrupted.push_back(Finished{names.back(),
                                     static_cast<int>(st.Int(1)),
                                     {},
                                     /*interrupted=*/true,
                                     now});
    }
    CRUNCHER_RETURN_IF_ERROR(st.status());
  }
  CRUNCHER_RETURN_IF_ERROR(RecordProgress(interrupted, ExponentialBackoff{}));
  return names;
}

Result<int> LocalJobStore::DeleteExpired(Millis now) {
  std::vector<std::string> expired;
  {
    std::lock_guard<std::mutex> lock(mu_);
    CRUNCHER_ASSIGN_OR_RETURN(
        Statement st,
        db_->Prepare("SELECT name FROM jobs WHERE expire_at IS NOT NULL AND "
                     "expire_at<=?"));
    st.Bind(1, now);
    while (st.Step()) expired.push_back(st.Text(0));
    CRUNCHER_RETURN_IF_ERROR(st.status());
  }
  int deleted = 0;
  for (const auto& name : expired) {
    Status s = Delete(name);
    if (s.ok())
      ++deleted;
    else if (s.code() != StatusCode::kNotFound)
      return s;
  }
  return deleted;
}

Result<std::vector<std::string>> LocalJobStore::Existing(
    const std::vector<std::string>& names) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(Statement st,
                            db_->Prepare("SELECT 1 FROM jobs WHERE name=?"));
  std::vector<std::string> out;
  for (const auto& name : names) {
    st.Reset();
    st.Bind(1, name);
    if (st.Step()) out.push_back(name);
    CRUNCHER_RETURN_IF_ERROR(st.status());
  }
  return out;
}

}  // namespace cruncher::local
