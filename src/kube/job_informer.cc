#include "kube/job_informer.h"

#include <algorithm>
#include <random>
#include <utility>

#include "core/json_limits.h"
#include "core/log.h"

namespace cruncher::kube {
namespace {

// client-go's reflector asks the server to end each watch after a random
// 5-10 minutes, so that watches of many clients do not expire together.
int WatchTimeoutSeconds() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_int_distribution<int>(300, 600)(rng);
}

}  // namespace

JobInformer::JobInformer(JobClient& client, std::string label_selector,
                         const Clock& clock)
    : client_(client), selector_(std::move(label_selector)), clock_(clock) {}

JobInformer::Entry JobInformer::EntryFor(const Job& job) {
  const nlohmann::json& full = job.json();
  nlohmann::json slim = nlohmann::json::object();
  for (const char* key : {"apiVersion", "kind", "metadata", "status"}) {
    auto it = full.find(key);
    if (it != full.end()) slim[key] = *it;
  }
  auto metadata = slim.find("metadata");
  if (metadata != slim.end() && metadata->is_object()) {
    metadata->erase("managedFields");
    auto annotations = metadata->find("annotations");
    if (annotations != metadata->end() && annotations->is_object()) {
      annotations->erase(std::string(kTaskAnnotation));
    }
  }
  Entry e;
  e.json = slim.dump();
  e.created_at = job.created_at();
  e.finished = job.finished();
  return e;
}

void JobInformer::Run(const std::stop_token& stop) {
  // Failures in a row: lists that failed, and watches that failed or ended
  // at once (a server answering every watch with 410, a proxy closing
  // streams). Each waits longer before the next try, so such a server gets
  // a few requests a minute rather than a loop; a healthy watch resets it.
  int failures = 0;
  auto back_off = [&](const Status& status, const char* what) {
    ++failures;
    const Millis delay = backoff_.Delay(failures);
    Log(LogLevel::kWarn, what,
        {{"error", status.message()},
         {"namespace", client_.namespace_name()},
         {"failures", failures},
         {"retry_in_ms", delay}});
    return clock_.SleepFor(delay, stop);
  };
  while (!stop.stop_requested()) {
    std::uint64_t list_started;
    {
      std::lock_guard<std::mutex> lock(mu_);
      list_started = write_seq_;
      ++lists_;
    }
    // Entries are made page by page: the list is never whole in memory.
    std::unordered_map<std::string, Entry> fresh;
    Result<std::string> listed = client_.ListEach(
        selector_, 500,
        [&](Job job) { fresh.insert_or_assign(job.name(), EntryFor(job)); },
        stop);
    if (!listed.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        list_error_ = listed.status().message();
      }
      if (stop.stop_requested()) return;
      if (!back_off(listed.status(), "job_list_failed")) return;
      continue;
    }
    std::string resource_version = std::move(*listed);
    Replace(std::move(fresh), list_started);
    while (!stop.stop_requested()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        ++watches_;
      }
      ApiError error;
      const Millis watch_started = clock_.NowMillis();
      int events = 0;
      Status watched = client_.Watch(
          selector_, resource_version, WatchTimeoutSeconds(),
          [&](WatchEvent event) {
            ++events;
            std::string rv = MetadataString(event.object, "resourceVersion");
            if (!rv.empty()) resource_version = std::move(rv);
            Apply(event);
            return true;
          },
          stop, &error);
      if (stop.stop_requested()) return;
      // A watch that lasted, or that the server ended normally after
      // delivering events, shows the server is well: start counting again.
      const bool lasted =
          clock_.NowMillis() - watch_started >= kMinHealthyWatchMillis;
      if (lasted || (watched.ok() && events > 0)) failures = 0;
      if (watched.ok()) {
        // The server ended the watch: resume from where it was. One that
        // ends at once (a proxy closing streams) is backed off, or it would
        // spend the rate limit creates and the Lease share.
        if (lasted) continue;
        if (!back_off(Unavailable("the watch of " + client_.namespace_name() +
                                  " ended at once"),
                      "job_watch_ended_at_once")) {
          return;
        }
        continue;
      }
      // Any other end (410 Gone, a broken stream, an event that cannot be
      // decoded) lists again, as client-go's reflector does: what was
      // missed is only known from a fresh list.
      if (error.http_status == 410) {
        Log(LogLevel::kInfo, "job_watch_expired",
            {{"namespace", client_.namespace_name()},
             {"resource_version", resource_version}});
        if (lasted) break;
      } else if (lasted) {
        Log(LogLevel::kWarn, "job_watch_failed",
            {{"error", watched.message()},
             {"namespace", client_.namespace_name()}});
        break;
      }
      if (!back_off(watched, "job_watch_failed")) return;
      break;
    }
  }
}

void JobInformer::Replace(std::unordered_map<std::string, Entry> fresh,
                          std::uint64_t list_started) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Keep what this process wrote after the list began: the list's
    // snapshot may predate it, and the watch will bring it again anyway.
    for (auto& [name, entry] : jobs_) {
      if (entry.written > list_started && !fresh.contains(name)) {
        fresh.emplace(name, std::move(entry));
      }
    }
    // And what was deleted after it began, which the snapshot may still
    // hold.
    for (const auto& [name, tombstone] : deleted_) {
      if (tombstone.seq > list_started) fresh.erase(name);
    }
    jobs_ = std::move(fresh);
    synced_ = true;
  }
  synced_cv_.notify_all();
}

void JobInformer::Apply(const WatchEvent& event) {
  if (event.type == "BOOKMARK") return;
  Result<Job> job = Job::FromJson(event.object);
  if (!job.ok()) return;
  if (event.type == "DELETED") {
    std::lock_guard<std::mutex> lock(mu_);
    jobs_.erase(job->name());
    Tombstone(job->name(), MetadataString(job->json(), "uid"));
  } else if (event.type == "ADDED" || event.type == "MODIFIED") {
    Entry entry = EntryFor(*job);
    std::lock_guard<std::mutex> lock(mu_);
    jobs_[job->name()] = std::move(entry);
  }
}

void JobInformer::Tombstone(const std::string& name, const std::string& uid) {
  // Bounded: the oldest half goes when full (a write-through racing a
  // delete happens within seconds; a tombstone is only needed that long).
  if (deleted_.size() >= kMaxTombstones) {
    std::vector<std::pair<std::uint64_t, std::string>> by_age;
    for (const auto& [n, t] : deleted_) by_age.emplace_back(t.seq, n);
    std::sort(by_age.begin(), by_age.end());
    for (std::size_t i = 0; i < by_age.size() / 2; ++i) {
      deleted_.erase(by_age[i].second);
    }
  }
  deleted_[name] = Tombstone_{uid, ++write_seq_};
}

bool JobInformer::HasSynced() const {
  std::lock_guard<std::mutex> lock(mu_);
  return synced_;
}

bool JobInformer::WaitForSync(const std::stop_token& stop) const {
  std::unique_lock<std::mutex> lock(mu_);
  return synced_cv_.wait(lock, stop, [&] { return synced_; });
}

std::optional<Job> JobInformer::Get(const std::string& name) const {
  std::string text;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(name);
    if (it == jobs_.end()) return std::nullopt;
    text = it->second.json;
  }
  Result<Job> job = Job::FromJson(nlohmann::json::parse(text));
  if (!job.ok()) return std::nullopt;
  return std::move(*job);
}

std::vector<Job> JobInformer::List() const {
  std::vector<std::pair<std::pair<Millis, std::string>, std::string>> texts;
  {
    std::lock_guard<std::mutex> lock(mu_);
    texts.reserve(jobs_.size());
    for (const auto& [name, entry] : jobs_) {
      texts.push_back({{entry.created_at, name}, entry.json});
    }
  }
  std::sort(texts.begin(), texts.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Job> out;
  out.reserve(texts.size());
  for (auto& [key, text] : texts) {
    Result<Job> job = Job::FromJson(nlohmann::json::parse(text));
    if (job.ok()) out.push_back(std::move(*job));
  }
  return out;
}

int JobInformer::CountUnfinished() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(
      std::count_if(jobs_.begin(), jobs_.end(),
                    [](const auto& kv) { return !kv.second.finished; }));
}

std::size_t JobInformer::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return jobs_.size();
}

void JobInformer::Put(const Job& job) {
  Entry entry = EntryFor(job);
  std::lock_guard<std::mutex> lock(mu_);
  entry.written = ++write_seq_;
  // Only if absent: when the watch got here first, its copy is newer; and
  // not if the watch has already seen this very Job deleted.
  auto dead = deleted_.find(job.name());
  if (dead != deleted_.end() &&
      dead->second.uid == MetadataString(job.json(), "uid"))
    return;
  jobs_.try_emplace(job.name(), std::move(entry));
}

void JobInformer::Remove(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = jobs_.find(name);
  std::string uid;
  if (it != jobs_.end()) {
    Result<nlohmann::json> object = ParseJson(it->second.json);
    if (object.ok()) uid = MetadataString(*object, "uid");
    jobs_.erase(it);
  }
  Tombstone(name, uid);
}

std::string JobInformer::SyncError() const {
  std::lock_guard<std::mutex> lock(mu_);
  return list_error_;
}

std::uint64_t JobInformer::lists() const {
  std::lock_guard<std::mutex> lock(mu_);
  return lists_;
}

std::uint64_t JobInformer::watches() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watches_;
}

}  // namespace cruncher::kube
