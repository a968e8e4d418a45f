// JobInformer: an in-memory copy of our Jobs, kept current by list + watch
// (client-go's reflector and store, for one resource).
//
// Run() lists the Jobs matching the selector (paged), marks the cache
// synced, then watches from the list's resourceVersion with bookmarks;
// when the server ends a watch it re-watches from the last version seen;
// when a watch fails (410 Gone: the version was compacted away, at open or
// as an ERROR event; a broken stream; a line or event that cannot be
// decoded, logged once with an excerpt) it lists again, as client-go's
// reflector does, so an API server that goes away for a while is caught up
// with when it returns. Failed lists, failed watches and watches that end
// at once back off exponentially (0.5 s doubling to 30 s, logged at warn)
// through the Clock; a watch that lasts a second, or ends normally after
// delivering events, resets the backoff.
//
// Writes go through: the backend puts a Job it just created (or removes one
// it just deleted) so that a reader never sees a created Job as missing.
// A relist keeps such entries written after the list began.
//
// Memory: the cache keeps what a controller reads of a Job, its metadata
// (without managedFields and without the `task` annotation, which can be
// 256 KiB) and its status, as compact JSON text rather than a parsed tree
// (which costs several times its text); the spec is left out. A list is
// turned into entries page by page. So 10,000 Jobs take a few MB. Readers
// that need a whole Job (`jobs -o json`, requeue) ask the API.
//
// Thread-safety: Run on one thread; every other method from any thread.
#ifndef CRUNCHER_KUBE_JOB_INFORMER_H_
#define CRUNCHER_KUBE_JOB_INFORMER_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/job.h"
#include "kube/job_client.h"

namespace cruncher::kube {

class JobInformer {
 public:
  JobInformer(JobClient& client, std::string label_selector,
              const Clock& clock);

  // Lists and watches until `stop`. Errors are logged, never fatal.
  void Run(const std::stop_token& stop);

  bool HasSynced() const;
  // Why the last list failed ("" if none has): what a reader waiting for
  // the sync is told.
  std::string SyncError() const;
  // Blocks until the first list has landed or `stop`; false on stop.
  bool WaitForSync(const std::stop_token& stop) const;

  std::optional<Job> Get(const std::string& name) const;
  // Oldest first (creationTimestamp, then name).
  std::vector<Job> List() const;
  int CountUnfinished() const;
  std::size_t size() const;

  // Write-through from this process's own creates and deletes.
  void Put(const Job& job);
  void Remove(const std::string& name);

  // Counters for tests and metrics.
  std::uint64_t lists() const;
  std::uint64_t watches() const;

 private:
  struct Entry {
    std::string json;  // compact, without managedFields
    Millis created_at = 0;
    bool finished = false;
    std::uint64_t written = 0;  // write_seq_ when Put by this process
  };
  // A Job this process or the watch saw deleted, so that a late
  // write-through of it (its create's answer handled after the watch's
  // DELETED) does not bring it back; `seq` orders it against a relist.
  struct Tombstone_ {
    std::string uid;
    std::uint64_t seq = 0;
  };
  static constexpr std::size_t kMaxTombstones = 4096;
  // A watch that ends sooner than this is backed off; one that lasts this
  // long resets the backoff.
  static constexpr Millis kMinHealthyWatchMillis = 1000;

  static Entry EntryFor(const Job& job);
  void Tombstone(const std::string& name, const std::string& uid);  // mu_ held
  void Replace(std::unordered_map<std::string, Entry> fresh,
               std::uint64_t list_started);
  void Apply(const WatchEvent& event);

  JobClient& client_;
  const std::string selector_;
  const Clock& clock_;
  const ExponentialBackoff backoff_{500, 30'000};

  mutable std::mutex mu_;
  mutable std::condition_variable_any synced_cv_;
  std::unordered_map<std::string, Entry> jobs_;  // by name; guarded by mu_
  std::unordered_map<std::string, Tombstone_> deleted_;  // guarded by mu_
  std::string list_error_;                               // guarded by mu_
  bool synced_ = false;
  std::uint64_t write_seq_ = 0;
  std::uint64_t lists_ = 0;
  std::uint64_t watches_ = 0;
};

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_JOB_INFORMER_H_
