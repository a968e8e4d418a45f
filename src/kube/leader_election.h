// LeaderElector: one leader among replicas of `cruncher watch`, through a
// coordination.k8s.io/v1 Lease, with client-go's rules and defaults (lease
// duration 15 s, renew deadline 10 s, retry period 2 s), so that at most
// one dispatcher creates Jobs from the queue at a time.
//
//  - A candidate takes the Lease when it has no holder (released) or when
//    it has expired by the candidate's own observation: the record has not
//    changed for leaseDurationSeconds since this process last saw it change.
//    The timestamps in the record are never compared with our clock: the
//    holder's clock may differ from ours by any amount.
//  - Every write carries the resourceVersion last read (optimistic
//    concurrency): if anyone wrote in between, the server answers 409 and
//    the next attempt re-reads. The Lease is created when absent.
//  - The leader renews every retry period. If no renewal succeeds within
//    the renew deadline of the last one, leadership is lost at that moment;
//    others cannot take the Lease before lease duration has passed since
//    they saw that renewal, so the old leader has stopped by then
//    (lease duration > renew deadline). A leader that sees another holder
//    in the Lease stops at once.
//  - A leader that stops cleanly releases the Lease (holderIdentity "",
//    leaseDurationSeconds 1, as client-go's ReleaseOnCancel), so a
//    successor takes over at its next attempt rather than after the lease
//    duration.
//
// The candidate waits between attempts with `retry_period` and no jitter:
// a handful of replicas contend, not a herd.
//
// Thread-safety: Run is called from one thread at a time; IsLeader from
// any. Run starts two threads of its own while leading: one runs
// on_started_leading, one watches the renew deadline. Both wait on the
// Clock, so a FakeClock under test must be in manual mode.
#ifndef CRUNCHER_KUBE_LEADER_ELECTION_H_
#define CRUNCHER_KUBE_LEADER_ELECTION_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"
#include "kube/rest_client.h"

namespace cruncher::kube {

struct LeaseConfig {
  std::string namespace_name;
  std::string name;  // of the Lease object
  // Unique among the candidates, and fresh per process (DefaultLeaseIdentity):
  // a restarted process with the same identity would take over its
  // predecessor's Lease at once, as client-go does.
  std::string identity;
  // How long others wait, from when they saw the Lease last change, before
  // they take it. Written to the Lease in whole seconds.
  Millis lease_duration = 15'000;
  // How long the leader keeps trying to renew before it gives up leading;
  // shorter than lease_duration.
  Millis renew_deadline = 10'000;
  // Between attempts to acquire or renew.
  Millis retry_period = 2'000;
};

// InvalidArgument unless the names are valid (namespace a DNS label, the
// Lease name a DNS subdomain), the identity is 1 to 253 printable ASCII
// characters without spaces, and lease_duration (≥ 1 s) > renew_deadline >
// 1.2 × retry_period > 0 (client-go's checks).
Status ValidateLeaseConfig(const LeaseConfig& config);

// "<hostname>_<16 random hex digits>": unique per process.
std::string DefaultLeaseIdentity();

// The state of a Lease as leader election sees it (its spec).
struct LeaseRecord {
  std::string holder;  // "" = released / never held
  std::int64_t duration_seconds = 0;
  std::string acquire_time;  // RFC 3339 with microseconds, as written
  std::string renew_time;
  std::int64_t transitions = 0;
  bool operator==(const LeaseRecord&) const = default;
};

// Reads a Lease object's spec; absent or mistyped fields read as empty.
LeaseRecord ParseLeaseRecord(const nlohmann::json& lease);

// "2026-01-01T00:00:00.123000Z": the MicroTime format of a Lease's times.
std::string FormatMicroTime(Millis t);

class LeaderElector {
 public:
  using StartedLeading = std::function<void(std::stop_token leading)>;
  using StoppedLeading = std::function<void()>;

  // `client` and `clock` must outlive the elector.
  LeaderElector(RestClient& client, LeaseConfig config, const Clock& clock);
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Tries to acquire the Lease every retry period until it holds it or
  // `stop` is requested. Once leading, runs on_started_leading(leading) on
  // a thread of its own and renews the Lease until on_started_leading
  // returns. `leading` is stopped the moment leadership is lost or `stop`
  // is requested; on_started_leading must then return promptly (leadership
  // lasts, and the Lease is renewed, until it does). Then, unless
  // leadership was lost, releases the Lease (bounded by the renew
  // deadline; a failed release is logged: the Lease then expires), calls
  // on_stopped_leading and returns.
  //
  // on_stopped_leading is called exactly when on_started_leading was.
  // Returns OK after a stop (also one before leading) or when
  // on_started_leading returned on its own; Unavailable, saying why, when
  // leadership was lost; InvalidArgument for a bad LeaseConfig. API errors
  // while acquiring or renewing are logged and retried, never returned.
  Status Run(const std::stop_token& stop,
             const StartedLeading& on_started_leading,
             const StoppedLeading& on_stopped_leading);

  // True from just before on_started_leading is called until leadership is
  // lost or, after a clean stop, until the Lease is released.
  bool IsLeader() const { return leading_.load(); }

  const LeaseConfig& config() const { return config_; }

 private:
  enum class Attempt {
    kHolding,      // acquired or renewed
    kHeldByOther,  // another holder, not expired by our observation
    kFailed,       // an API error (in `error`); retry next period
  };

  // One attempt, client-go's tryAcquireOrRenew: the leader first updates
  // the Lease it read last; otherwise (or on a conflict) it reads the Lease,
  // creates it when absent, and takes it when free or expired.
  Attempt TryAcquireOrRenew(const std::stop_token& stop, Status& error);
  Result<nlohmann::json> Update(const LeaseRecord& record,
                                const std::stop_token& stop);
  // Notes `record` as last seen; the observation time moves only when it
  // differs from what was seen before.
  void Observe(const LeaseRecord& record);
  bool ObservedValid(Millis now) const;
  LeaseRecord Desired(Millis now) const;
  // Renews until `done` (the work returned) or leadership is lost.
  void Renew(std::stop_source& leading, std::stop_source& done);
  // Ends the renew deadline's watch at once when `done` stops.
  void WatchDeadline(std::stop_source& leading, std::stop_source& done);
  void LoseToDeadline(std::stop_source& leading, std::stop_source& done);
  // Ends leadership: records why (the first reason wins), clears
  // IsLeader, stops the work's token and the renewing.
  void Lose(const std::string& why, std::stop_source& leading,
            std::stop_source& done);
  void Release();
  std::string LeasePath() const;
  std::string Describe() const;  // "lease ns/name"

  RestClient& client_;
  const LeaseConfig config_;
  const Clock& clock_;

  // Touched by Run's thread only (and Release, after the others joined).
  nlohmann::json lease_;  // the Lease as last read or written; null: none
  LeaseRecord observed_;
  Millis observed_at_ = 0;

  std::atomic<bool> leading_{false};
  // When the last successful renewal was sent: the renew deadline runs
  // from here.
  std::atomic<Millis> renewed_at_{0};
  std::mutex mu_;
  std::string lost_reason_;  // guarded by mu_; "" while not lost
  std::string last_error_;   // guarded by mu_; of the last failed attempt
  LogLimiter log_limiter_{60'000};
};

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_LEADER_ELECTION_H_
