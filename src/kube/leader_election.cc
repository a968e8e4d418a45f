#include "kube/leader_election.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <thread>
#include <utility>

#include "core/job_name.h"
#include "kube/kubeconfig.h"

namespace cruncher::kube {
namespace {

// client-go's JitterFactor: the renew deadline must leave room for more
// than one retry period even with jitter.
constexpr double kJitterFactor = 1.2;

std::string StringAt(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

std::int64_t IntAt(const nlohmann::json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number_integer() ? it->get<std::int64_t>()
                                                       : 0;
}

// A Lease as the server returns it: an object with a resourceVersion to
// write against.
bool IsLeaseObject(const nlohmann::json& lease) {
  if (!lease.is_object()) return false;
  auto metadata = lease.find("metadata");
  return metadata != lease.end() && metadata->is_object() &&
         !StringAt(*metadata, "resourceVersion").empty();
}

nlohmann::json SpecOf(const LeaseRecord& record) {
  return {{"holderIdentity", record.holder},
          {"leaseDurationSeconds", record.duration_seconds},
          {"acquireTime", record.acquire_time},
          {"renewTime", record.renew_time},
          {"leaseTransitions", record.transitions}};
}

}  // namespace

Status ValidateLeaseConfig(const LeaseConfig& config) {
  if (!IsValidNamespaceName(config.namespace_name)) {
    return InvalidArgument("lease namespace \"" + config.namespace_name +
                           "\" is not a valid namespace name");
  }
  if (!IsValidObjectName(config.name)) {
    return InvalidArgument("lease name \"" + config.name +
                           "\" is not a valid object name (lower-case "
                           "letters, digits, '-' and '.')");
  }
  // Printable ASCII: it is compared byte for byte with what the server
  // hands back, and written into JSON (which could not carry invalid UTF-8).
  const bool printable =
      std::all_of(config.identity.begin(), config.identity.end(),
                  [](char c) { return c > ' ' && c < 0x7f; });
  if (config.identity.empty() || config.identity.size() > 253 || !printable) {
    return InvalidArgument("lease " + config.name +
                           ": the identity must be 1 to 253 printable ASCII "
                           "characters without spaces");
  }
  if (config.retry_period <= 0 || config.lease_duration < 1000) {
    return InvalidArgument("lease " + config.name +
                           ": the retry period must be > 0 and the lease "
                           "duration at least 1 s");
  }
  if (config.lease_duration <= config.renew_deadline) {
    return InvalidArgument("lease " + config.name +
                           ": the lease duration must be longer than the "
                           "renew deadline");
  }
  if (static_cast<double>(config.renew_deadline) <=
      kJitterFactor * static_cast<double>(config.retry_period)) {
    return InvalidArgument("lease " + config.name +
                           ": the renew deadline must be longer than 1.2 "
                           "retry periods");
  }
  return Status::Ok();
}

std::string DefaultLeaseIdentity() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof host, "cruncher");
  }
  std::random_device random;
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%08x%08x", random(), random());
  return std::string(host) + "_" + suffix;
}

LeaseRecord ParseLeaseRecord(const nlohmann::json& lease) {
  LeaseRecord record;
  if (!lease.is_object()) return record;
  auto spec = lease.find("spec");
  if (spec == lease.end() || !spec->is_object()) return record;
  record.holder = StringAt(*spec, "holderIdentity");
  record.duration_seconds = IntAt(*spec, "leaseDurationSeconds");
  record.acquire_time = StringAt(*spec, "acquireTime");
  record.renew_time = StringAt(*spec, "renewTime");
  record.transitions = IntAt(*spec, "leaseTransitions");
  return record;
}

std::string FormatMicroTime(Millis t) {
  std::string seconds = FormatRfc3339(t - ((t % 1000) + 1000) % 1000);
  char fraction[16];
  std::snprintf(fraction, sizeof fraction, ".%03d000Z",
                static_cast<int>(((t % 1000) + 1000) % 1000));
  seconds.pop_back();  // the 'Z'
  return seconds + fraction;
}

LeaderElector::LeaderElector(RestClient& client, LeaseConfig config,
                             const Clock& clock)
    : client_(client), config_(std::move(config)), clock_(clock) {}

std::string LeaderElector::LeasePath() const {
  return "/apis/coordination.k8s.io/v1/namespaces/" + config_.namespace_name +
         "/leases";
}

std::string LeaderElector::Describe() const {
  return "lease " + config_.namespace_name + "/" + config_.name;
}

void LeaderElector::Observe(const LeaseRecord& record) {
  if (record != observed_) {
    observed_ = record;
    observed_at_ = clock_.NowMillis();
  }
}

bool LeaderElector::ObservedValid(Millis now) const {
  return observed_at_ + observed_.duration_seconds * 1000 > now;
}

LeaseRecord LeaderElector::Desired(Millis now) const {
  LeaseRecord record;
  record.holder = config_.identity;
  record.duration_seconds = config_.lease_duration / 1000;
  record.acquire_time = FormatMicroTime(now);
  record.renew_time = record.acquire_time;
  return record;
}

Result<nlohmann::json> LeaderElector::Update(const LeaseRecord& record,
                                             const std::stop_token& stop) {
  // The whole object as last read, so its resourceVersion makes the write
  // conditional and fields we do not know (labels, other spec fields)
  // survive.
  nlohmann::json body = lease_;
  nlohmann::json& spec = body["spec"];
  if (!spec.is_object()) spec = nlohmann::json::object();
  const nlohmann::json fields = SpecOf(record);
  for (const auto& [key, value] : fields.items()) spec[key] = value;
  auto updated =
      client_.Do({"PUT", LeasePath() + "/" + config_.name, body.dump()}, stop);
  if (!updated.ok()) return updated.status();
  if (!IsLeaseObject(*updated)) {
    return Internal("PUT " + LeasePath() + "/" + config_.name +
                    ": the answer is not a Lease");
  }
  return updated;
}

LeaderElector::Attempt LeaderElector::TryAcquireOrRenew(
    const std::stop_token& stop, Status& error) {
  const Millis now = clock_.NowMillis();
  LeaseRecord desired = Desired(now);

  // 1. The leader's fast path: write over the Lease as we last saw it.
  if (observed_.holder == config_.identity && ObservedValid(now) &&
      IsLeaseObject(lease_)) {
    desired.acquire_time = observed_.acquire_time;
    desired.transitions = observed_.transitions;
    auto updated = Update(desired, stop);
    if (updated.ok()) {
      lease_ = std::move(*updated);
      Observe(ParseLeaseRecord(lease_));
      return Attempt::kHolding;
    }
    // A conflict (someone wrote), the Lease deleted, a server error: find
    // out what is there now.
  }

  // 2. Read it, create it when absent.
  const std::string path = LeasePath() + "/" + config_.name;
  ApiError api;
  auto current = client_.Do({"GET", path, ""}, stop, &api);
  if (!current.ok() && api.http_status == 404) {
    nlohmann::json lease = {
        {"apiVersion", "coordination.k8s.io/v1"},
        {"kind", "Lease"},
        {"metadata",
         {{"name", config_.name}, {"namespace", config_.namespace_name}}},
        {"spec", SpecOf(desired)}};
    auto created = client_.Do({"POST", LeasePath(), lease.dump()}, stop);
    if (!created.ok()) {
      error = created.status();  // AlreadyExists: another candidate won
      return Attempt::kFailed;
    }
    if (!IsLeaseObject(*created)) {
      error = Internal("POST " + LeasePath() + ": the answer is not a Lease");
      return Attempt::kFailed;
    }
    lease_ = std::move(*created);
    Observe(ParseLeaseRecord(lease_));
    return Attempt::kHolding;
  }
  if (!current.ok()) {
    error = current.status();
    return Attempt::kFailed;
  }
  if (!IsLeaseObject(*current)) {
    error = Internal("GET " + path + ": the answer is not a Lease");
    return Attempt::kFailed;
  }
  lease_ = std::move(*current);

  // 3. Judge expiry by when we saw the record change, never by its times.
  Observe(ParseLeaseRecord(lease_));
  const bool ours = observed_.holder == config_.identity;
  if (!observed_.holder.empty() && !ours && ObservedValid(now)) {
    return Attempt::kHeldByOther;
  }

  // 4. Free, expired or ours: write it with the resourceVersion just read.
  if (ours) {
    desired.acquire_time = observed_.acquire_time;
    desired.transitions = observed_.transitions;
  } else {
    desired.transitions = observed_.transitions + 1;
  }
  auto updated = Update(desired, stop);
  if (!updated.ok()) {
    error = updated.status();  // 409: someone else wrote; re-read next time
    return Attempt::kFailed;
  }
  lease_ = std::move(*updated);
  Observe(ParseLeaseRecord(lease_));
  return Attempt::kHolding;
}

Status LeaderElector::Run(const std::stop_token& stop,
                          const StartedLeading& on_started_leading,
                          const StoppedLeading& on_stopped_leading) {
  CRUNCHER_RETURN_IF_ERROR(ValidateLeaseConfig(config_));
  {
    std::lock_guard<std::mutex> lock(mu_);
    lost_reason_.clear();
    last_error_.clear();
  }

  // Acquire.
  while (true) {
    const Millis attempt_at = clock_.NowMillis();
    Status error;
    const Attempt attempt = TryAcquireOrRenew(stop, error);
    if (attempt == Attempt::kHolding) {
      renewed_at_ = attempt_at;
      break;
    }
    if (attempt == Attempt::kFailed && !stop.stop_requested()) {
      log_limiter_.Log(LogLevel::kWarn, "leader_election_error",
                       {{"lease", Describe()}, {"error", error.message()}},
                       clock_.NowMillis());
    }
    if (!clock_.SleepUntil(attempt_at + config_.retry_period, stop)) {
      return Status::Ok();
    }
  }

  Log(LogLevel::kInfo, "leader_election_started",
      {{"lease", Describe()},
       {"identity", config_.identity},
       {"transitions", observed_.transitions}});
  std::stop_source leading;  // the work's token
  std::stop_source done;     // ends renewing: work returned or lease lost
  leading_ = true;
  {
    std::stop_callback forward(stop, [&leading] { leading.request_stop(); });
    std::jthread work([&] {
      on_started_leading(leading.get_token());
      done.request_stop();
    });
    std::jthread watchdog([&] { WatchDeadline(leading, done); });
    Renew(leading, done);
  }  // joins the work and the watchdog

  std::string lost;
  {
    std::lock_guard<std::mutex> lock(mu_);
    lost = lost_reason_;
  }
  if (lost.empty()) Release();
  leading_ = false;
  on_stopped_leading();
  if (!lost.empty()) {
    Log(LogLevel::kWarn, "leader_election_lost",
        {{"lease", Describe()}, {"reason", lost}});
    return Unavailable(Describe() + ": leadership lost: " + lost);
  }
  return Status::Ok();
}

void LeaderElector::Renew(std::stop_source& leading, std::stop_source& done) {
  const std::stop_token until = done.get_token();
  Millis attempt_at = renewed_at_.load();
  while (clock_.SleepUntil(attempt_at + config_.retry_period, until)) {
    attempt_at = clock_.NowMillis();
    if (attempt_at >= renewed_at_.load() + config_.renew_deadline) {
      // Too late, whatever the attempt would answer: the deadline is the
      // moment leadership ends (the watchdog sees the same).
      LoseToDeadline(leading, done);
      return;
    }
    Status error;
    const Attempt attempt = TryAcquireOrRenew(until, error);
    if (attempt == Attempt::kHolding) {
      renewed_at_ = attempt_at;
    } else if (attempt == Attempt::kHeldByOther) {
      // Someone took it (or an operator edited it): our claim is gone now,
      // not at the deadline.
      Lose("the lease is held by " + observed_.holder, leading, done);
      return;
    } else {
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_error_ = error.message();
      }
      if (!until.stop_requested()) {
        log_limiter_.Log(LogLevel::kWarn, "leader_election_renew_failed",
                         {{"lease", Describe()}, {"error", error.message()}},
                         clock_.NowMillis());
      }
    }
  }
}

void LeaderElector::WatchDeadline(std::stop_source& leading,
                                  std::stop_source& done) {
  const std::stop_token until = done.get_token();
  while (true) {
    // Renewals only move the deadline later: sleep to the one known now,
    // then look again.
    const Millis deadline = renewed_at_.load() + config_.renew_deadline;
    if (!clock_.SleepUntil(deadline, until)) return;
    if (clock_.NowMillis() >= renewed_at_.load() + config_.renew_deadline) {
      LoseToDeadline(leading, done);
      return;
    }
  }
}

void LeaderElector::LoseToDeadline(std::stop_source& leading,
                                   std::stop_source& done) {
  std::string last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last = last_error_;
  }
  Lose("not renewed within the renew deadline (" +
           std::to_string(config_.renew_deadline) + " ms)" +
           (last.empty() ? "" : "; last error: " + last),
       leading, done);
}

void LeaderElector::Lose(const std::string& why, std::stop_source& leading,
                         std::stop_source& done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The work may have returned already: then the stop was clean.
    if (!lost_reason_.empty() || done.stop_requested()) return;
    lost_reason_ = why;
  }
  leading_ = false;
  leading.request_stop();
  done.request_stop();
}

void LeaderElector::Release() {
  if (observed_.holder != config_.identity || !IsLeaseObject(lease_)) return;
  // Bounded like client-go's release: a shutdown must not hang on an
  // unreachable server; the Lease then simply expires.
  std::stop_source bound;
  std::jthread timer([this, &bound](const std::stop_token& cancel) {
    if (clock_.SleepFor(config_.renew_deadline, cancel)) bound.request_stop();
  });
  const Millis now = clock_.NowMillis();
  LeaseRecord released;
  released.duration_seconds = 1;
  released.acquire_time = FormatMicroTime(now);
  released.renew_time = released.acquire_time;
  released.transitions = observed_.transitions;
  auto updated = Update(released, bound.get_token());
  if (!updated.ok()) {
    Log(LogLevel::kWarn, "leader_election_release_failed",
        {{"lease", Describe()}, {"error", updated.status().message()}});
    return;
  }
  lease_ = std::move(*updated);
  Observe(ParseLeaseRecord(lease_));
  Log(LogLevel::kInfo, "leader_election_released", {{"lease", Describe()}});
}

}  // namespace cruncher::kube
