#include "dispatch/dispatcher.h"

#include <algorithm>
#include <future>
#include <iterator>
#include <string_view>

#include "core/job.h"
#include "core/log.h"

namespace cruncher::dispatch {
namespace {

// Kubernetes: a message whose Job the backend rejects is poison only if the
// request itself is wrong; anything else may be fixed by retrying later.
bool IsPermanent(const Status& s) {
  return s.code() == StatusCode::kInvalidArgument;
}

int SecondsCeil(Millis ms) {
  return static_cast<int>(std::max<Millis>(0, (ms + 999) / 1000));
}

// While backpressure holds, how often the unfinished Jobs are counted again.
constexpr Millis kBackpressurePoll = 200;

// on-success: checks come every check interval, but at least four times per
// visibility timeout (and no more than once a second, the receive wait's
// granularity), so that a short timeout is extended several times over.
Millis AdaptedCheckInterval(const DispatcherOptions& o) {
  return std::min(o.check_interval,
                  std::max<Millis>(1'000, o.visibility_seconds * 1000LL / 4));
}

// What a check may lag behind its due time: the create calls of the batch
// received just before it, and the extension call's own latency.
constexpr Millis kCheckLag = 2'000;

// A reason cut shorter than this would no longer say what went wrong.
constexpr size_t kMinReasonBytes = 64;
constexpr std::string_view kTruncatedMark = " [truncated]";

// `text` cut to at most `max` bytes at a UTF-8 character boundary (an SQS
// String attribute must be valid Unicode).
std::string Utf8Prefix(std::string_view text, size_t max) {
  if (text.size() <= max) return std::string(text);
  size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return std::string(text.substr(0, end));
}

enum class ReasonFit { kWhole, kTruncated, kOmitted };

const char* ToString(ReasonFit fit) {
  switch (fit) {
    case ReasonFit::kWhole:
      return "whole";
    case ReasonFit::kTruncated:
      return "truncated";
    case ReasonFit::kOmitted:
      return "omitted: the body or the message's own attributes leave no room";
  }
  return "";
}

// The copy of a poison message for the dead-letter queue, within the SQS
// size limit (a copy over it is refused, and the queue's own redrive then
// moves the message without any reason). The body and the message's own
// attributes stay verbatim: they are the task as it was sent, which
// `dlq redrive` puts back. Cruncher's attributes (those of an earlier
// poisoning replaced) follow as far as they fit, most useful first: the
// reason, cut short and marked if need be but not below kMinReasonBytes,
// then the source message id, then the source queue. A body that leaves no
// room for even a short reason goes alone; the caller's log line then holds
// the only copy of the reason, with both message ids.
OutgoingMessage DeadLetterCopy(const Message& message, std::string_view reason,
                               const std::string& source_queue,
                               ReasonFit* fit) {
  // Delay 0: the DLQ's own default delay would only hide the failure.
  OutgoingMessage copy{message.body, message.attributes, 0};
  for (const char* ours :
       {kErrorAttribute, kSourceQueueAttribute, kSourceMessageIdAttribute}) {
    copy.attributes.erase(ours);
  }
  const MessageAttribute kind;  // "String"
  const size_t base = MessageSize(copy);
  const std::pair<const char*, const std::string*> extras[] = {
      {kSourceMessageIdAttribute, &message.id},
      {kSourceQueueAttribute, &source_queue}};
  // SQS takes at most kMaxMessageAttributes attributes: the message's own
  // come first, then ours as far as they fit by count as well as by size.
  const size_t own = copy.attributes.size();
  if (own >= kMaxMessageAttributes) {
    *fit = ReasonFit::kOmitted;
    return copy;
  }
  for (size_t n = std::min(std::size(extras), kMaxMessageAttributes - own - 1);;
       --n) {
    size_t needed =
        base + std::string_view(kErrorAttribute).size() + kind.data_type.size();
    for (size_t k = 0; k < n; ++k) {
      needed += std::string_view(extras[k].first).size() +
                kind.data_type.size() + extras[k].second->size();
    }
    const size_t limit = kMaxMessageBytes;
    const size_t room = needed <= limit ? limit - needed : 0;
    if (needed <= limit && (reason.size() <= room || room >= kMinReasonBytes)) {
      std::string value;
      if (reason.size() <= room) {
        value = std::string(reason);
        *fit = ReasonFit::kWhole;
      } else {
        value = Utf8Prefix(reason, room - kTruncatedMark.size());
        value += kTruncatedMark;
        *fit = ReasonFit::kTruncated;
      }
      copy.attributes[kErrorAttribute] = {kind.data_type, std::move(value)};
      for (size_t k = 0; k < n; ++k) {
        copy.attributes[extras[k].first] = {kind.data_type, *extras[k].second};
      }
      return copy;
    }
    if (n == 0) break;
  }
  *fit = ReasonFit::kOmitted;
  return copy;
}

}  // namespace

DispatcherStats& DispatcherStats::operator+=(const DispatcherStats& other) {
  for (auto [mine, theirs] : {std::pair{&receive_calls, &other.receive_calls},
                              {&received, &other.received},
                              {&jobs_created, &other.jobs_created},
                              {&jobs_existing, &other.jobs_existing},
                              {&acked, &other.acked},
                              {&poison, &other.poison},
                              {&dead_lettered, &other.dead_lettered},
                              {&transient_errors, &other.transient_errors},
                              {&released, &other.released},
                              {&backend_failures, &other.backend_failures},
                              {&handed_back, &other.handed_back}}) {
    *mine += theirs->load();
  }
  return *this;
}

int ReceiverGroup::Reserve(int want, int room) {
  std::lock_guard<std::mutex> lock(mu_);
  const int take = std::max(0, std::min(want, room - reserved_));
  reserved_ += take;
  return take;
}

void ReceiverGroup::Release(int taken) {
  std::lock_guard<std::mutex> lock(mu_);
  reserved_ -= taken;
}

void ReceiverGroup::SetDeep(bool deep) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (deep_ == deep) return;
    deep_ = deep;
  }
  deep_changed_.notify_all();
}

bool ReceiverGroup::WaitUntilDeep(const std::stop_token& stop) {
  std::unique_lock<std::mutex> lock(mu_);
  return deep_changed_.wait(lock, stop, [this] { return deep_; });
}

std::optional<AckStrategy> ParseAckStrategy(const std::string& text) {
  if (text == "on-create") return AckStrategy::kOnCreate;
  if (text == "on-success") return AckStrategy::kOnSuccess;
  return std::nullopt;
}

Dispatcher::Dispatcher(MessageQueue& source, MessageQueue* dead_letter,
                       JobBackend& backend, const JobTemplate& job_template,
                       DispatcherOptions options, Clock& clock)
    : source_(source),
      dead_letter_(dead_letter),
      backend_(backend),
      template_(job_template),
      options_(options),
      clock_(clock),
      retry_backoff_(options.retry_backoff, options.backoff_capacity),
      check_interval_(AdaptedCheckInterval(options)) {
  if (options.create_per_second > 0) {
    create_bucket_.emplace(options.create_per_second, 10.0, clock.NowMillis());
  }
}

Dispatcher::Outcome Dispatcher::Classify(const Message& message,
                                         const std::string& job_name,
                                         const Status& created,
                                         std::string* reason) {
  if (created.ok()) {
    stats_.jobs_created++;
    Log(LogLevel::kDebug, "job_created",
        {{"job", job_name}, {"message_id", message.id}});
    return Outcome::kCreated;
  }
  if (created.code() == StatusCode::kAlreadyExists) {
    auto existing = backend_.Get(job_name);
    if (!existing.ok()) {
      *reason = existing.status().ToString();
      return Outcome::kTransient;
    }
    // The existing Job is left alone either way; the reason says whose it
    // is: someone else's (a name clash with the template's prefix) or ours
    // for another message.
    if (!existing->managed_by_cruncher()) {
      *reason = "a Job named " + job_name +
                " already exists and was not created by Cruncher (no label " +
                std::string(kManagedByLabel) + "=" +
                std::string(kManagedByValue) +
                "); Cruncher leaves it alone: delete or rename it, or change "
                "the template's name prefix";
      return Outcome::kPoison;
    }
    const std::string owner = existing->annotation(kMessageIdAnnotation);
    if (owner != message.id) {
      const std::string whose =
          owner.empty()
              ? "no " + std::string(kMessageIdAnnotation) + " annotation"
              : "message " + owner;
      *reason = "a Job named " + job_name +
                " already exists and is Cruncher's Job for another message (" +
                whose + "), not for message " + message.id;
      return Outcome::kPoison;
    }
    stats_.jobs_existing++;
    return Outcome::kCreated;
  }
  *reason = created.ToString();
  return IsPermanent(created) ? Outcome::kPoison : Outcome::kTransient;
}

// Every decision is logged with the message id and the whole reason, so the
// reason survives even where the dead-letter copy has no room for it.
void Dispatcher::Poison(const Message& message, const std::string& reason) {
  stats_.poison++;
  const std::string why = reason.empty() ? "unknown" : reason;
  nlohmann::json fields = {{"queue", source_.name()},
                           {"message_id", message.id},
                           {"receive_count", message.receive_count},
                           {"reason", why}};
  if (dead_letter_ == nullptr) {
    // Only a queue without a RedrivePolicy (and no --dlq-url) has no DLQ, so
    // nothing moves the message: it returns after the visibility timeout.
    fields["action"] =
        "left in the queue (no dead-letter queue): it returns after the "
        "visibility timeout";
    Log(LogLevel::kWarn, "poison_message", std::move(fields));
    return;
  }
  ReasonFit fit = ReasonFit::kWhole;
  OutgoingMessage copy = DeadLetterCopy(message, why, source_.name(), &fit);
  fields["reason_attribute"] = ToString(fit);
  auto sent = dead_letter_->Send(copy);
  if (!sent.ok()) {
    // Not deleted: the message reappears and is tried again.
    fields["action"] = "kept: sending to the dead-letter queue failed";
    fields["error"] = sent.status().ToString();
    Log(LogLevel::kError, "poison_message", std::move(fields));
    return;
  }
  auto deleted = source_.DeleteBatch({message.receipt_handle});
  if (!deleted.front().status.ok()) {
    fields["delete_error"] = deleted.front().status.ToString();
  }
  stats_.dead_lettered++;
  fields["action"] = "sent to dead-letter queue " + dead_letter_->name();
  fields["dead_letter_message_id"] = *sent;
  Log(fit == ReasonFit::kOmitted ? LogLevel::kError : LogLevel::kWarn,
      "poison_message", std::move(fields));
}

void Dispatcher::Release(const std::string& message_id,
                         const std::string& handle, const std::string& why) {
  Millis delay = retry_backoff_.Failure(message_id);
  auto r = source_.ChangeVisibilityBatch({handle}, SecondsCeil(delay));
  Log(LogLevel::kInfo, "message_released",
      {{"queue", source_.name()},
       {"message_id", message_id},
       {"reason", why},
       {"visible_in_seconds", SecondsCeil(delay)},
       {"ok", r.front().status.ok()}});
}

int Dispatcher::ReceiveWait(Millis now) const {
  int wait = options_.wait_seconds;
  if (InFlight()) {
    // Whole seconds, rounded down: the check is never late for the wait.
    wait = std::min(wait, static_cast<int>(
                              std::max<Millis>(0, (next_check_ - now) / 1000)));
  }
  return wait;
}

Millis Dispatcher::WakeBy(Millis t) const {
  return InFlight() ? std::min(t, next_check_) : t;
}

Millis Dispatcher::ExtendWhenLeft() const {
  // Half the timeout, as before, unless that leaves less than the time to
  // the next check and its lag: then at every check (a short timeout).
  return std::max<Millis>(options_.visibility_seconds * 500LL,
                          check_interval_ + kCheckLag);
}

Result<int> Dispatcher::RunOnce(const std::stop_token& stop,
                                const std::stop_token& cancel) {
  Millis now = clock_.NowMillis();
  if (!held_.empty()) {
    // Nothing more is received while the backend fails.
    if (stop.stop_requested()) return 0;
    if (now < held_retry_at_) {
      CheckTracked(now, false);
      clock_.SleepUntil(WakeBy(held_retry_at_), stop);
      return 0;
    }
    std::vector<Attempt> retry = std::move(held_);
    held_.clear();
    CreateAndSettle(std::move(retry), now, cancel);
    CheckTracked(clock_.NowMillis(), false);
    return 0;
  }
  ReceiverGroup* group = options_.group;
  if (group != nullptr && options_.only_when_deep && !InFlight()) {
    // Nothing of its own to look after: idle until the queue is deep.
    if (!group->WaitUntilDeep(stop)) return 0;
    now = clock_.NowMillis();
  }
  int batch = 10;
  // What this receive holds of the room under max_active, given back once
  // its Jobs are created (and counted) or will not be.
  int reserved = 0;
  struct GiveBack {
    ReceiverGroup* group;
    int& n;
    ~GiveBack() {
      if (group != nullptr && n > 0) group->Release(n);
    }
  } give_back{group, reserved};
  if (options_.max_active > 0) {
    auto active = backend_.CountUnfinished();
    if (!active.ok()) {
      CheckTracked(now, false);  // in-flight messages still need extending
      return active.status().WithContext("count active jobs");
    }
    const int room = options_.max_active - *active;
    batch = group != nullptr ? (reserved = group->Reserve(batch, room))
                             : std::min(batch, room);
    if (batch <= 0) {
      // Backpressure: the messages stay safely in the queue meanwhile.
      CheckTracked(now, false);
      clock_.SleepFor(kBackpressurePoll, stop);
      return 0;
    }
  }
  if (create_bucket_) {
    // Receive no more messages than there are tokens: a message received
    // without one would only wait, invisible, in this process.
    int tokens = create_bucket_->Available(now);
    if (tokens == 0) {
      CheckTracked(now, false);
      clock_.SleepUntil(WakeBy(create_bucket_->NextAvailable(now)), stop);
      return 0;
    }
    batch = std::min(batch, tokens);
  }
  if (InFlight() && next_check_ - now < 1'000) {
    // The receive waits whole seconds: a check due within one comes first.
    if (!clock_.SleepUntil(next_check_, stop)) return 0;
    now = clock_.NowMillis();
    CheckTracked(now, false);
  }
  std::optional<int> visibility;
  if (options_.ack == AckStrategy::kOnSuccess) {
    visibility = options_.visibility_seconds;
  }
  stats_.receive_calls++;
  auto received = source_.Receive(batch, ReceiveWait(now), visibility, stop);
  if (!received.ok()) return received.status();
  if (group != nullptr) {
    group->SetDeep(batch == 10 && received->size() == 10);
  }
  now = clock_.NowMillis();
  if (create_bucket_)
    create_bucket_->Take(static_cast<int>(received->size()), now);
  // Render every message, then create their Jobs in one batch.
  std::vector<Attempt> attempts;
  for (Message& m : *received) {
    stats_.received++;
    auto rendered = template_.RenderForMessage(m, source_.name());
    if (!rendered.ok()) {
      Poison(m, rendered.status().message());
      retry_backoff_.Forget(
          m.id);  // terminal: dead-lettered or left to redrive
      continue;
    }
    std::string job = (*rendered)["metadata"]["name"].get<std::string>();
    attempts.push_back({std::move(m), std::move(job),
                        std::move(rendered).value(),
                        now + options_.visibility_seconds * 1000LL});
  }
  const int count = static_cast<int>(received->size());
  CreateAndSettle(std::move(attempts), now, cancel);
  // A Job that already existed may have finished: check new ones at once.
  CheckTracked(clock_.NowMillis(), count > 0);
  return count;
}

void Dispatcher::CreateAndSettle(std::vector<Attempt> attempts, Millis now,
                                 const std::stop_token& cancel) {
  if (attempts.empty()) return;
  std::vector<nlohmann::json> manifests;
  manifests.reserve(attempts.size());
  for (const Attempt& a : attempts) manifests.push_back(a.manifest);
  const std::vector<Status> created = backend_.CreateBatch(manifests, cancel);
  std::vector<std::string> to_delete;
  std::vector<Attempt> failed;
  std::string failure;
  bool answered = false;  // the backend decided at least one create
  for (size_t i = 0; i < attempts.size(); ++i) {
    Attempt& a = attempts[i];
    const Message& m = a.message;
    std::string reason;
    switch (Classify(m, a.job, created[i], &reason)) {
      case Outcome::kPoison:
        answered = true;
        Poison(m, reason);
        retry_backoff_.Forget(
            m.id);  // terminal: dead-lettered or left to redrive
        break;
      case Outcome::kTransient:
        stats_.transient_errors++;
        if (failure.empty()) failure = reason;
        Log(LogLevel::kWarn, "job_create_failed",
            {{"queue", source_.name()},
             {"message_id", m.id},
             {"job", a.job},
             {"error", reason}});
        failed.push_back(std::move(a));
        break;
      case Outcome::kCreated:
        answered = true;
        if (options_.ack == AckStrategy::kOnCreate) {
          retry_backoff_.Forget(m.id);  // terminal: acked
          to_delete.push_back(m.receipt_handle);
        } else {
          // A redelivered message whose Job already exists keeps its failure
          // count, so a Job that keeps failing backs off further each time.
          if (created[i].ok()) retry_backoff_.Forget(m.id);
          tracked_.push_back({a.job, m.id, m.receipt_handle,
                              now + options_.visibility_seconds * 1000LL});
        }
        break;
    }
  }
  if (answered && backend_failures_ > 0) {
    Log(LogLevel::kInfo, "backend_recovered",
        {{"queue", source_.name()}, {"failed_tries", backend_failures_}});
    backend_failures_ = 0;
  }
  if (!failed.empty()) {
    // Cancelled creates (a stop) are not the messages' fault either: held,
    // they go back at once with HandBack.
    if (answered && !cancel.stop_requested()) {
      // The backend works: these failed for their own reasons.
      for (const Attempt& a : failed) {
        Release(a.message.id, a.message.receipt_handle, "transient error");
      }
    } else {
      Hold(std::move(failed), failure, clock_.NowMillis());
    }
  }
  if (to_delete.empty()) return;
  if (!options_.overlap_acks) {
    Ack(to_delete);
    return;
  }
  // At most one batch of acks in flight: the previous one is done first.
  WaitForAcks();
  pending_acks_ =
      std::async(std::launch::async,
                 [this, handles = std::move(to_delete)] { Ack(handles); });
}

void Dispatcher::Ack(const std::vector<std::string>& handles) {
  for (const auto& r : source_.DeleteBatch(handles)) {
    if (r.status.ok()) {
      stats_.acked++;
    } else {
      // The Job exists; a redelivery meets AlreadyExists and acks again.
      Log(LogLevel::kWarn, "message_delete_failed",
          {{"queue", source_.name()}, {"error", r.status.ToString()}});
    }
  }
}

void Dispatcher::WaitForAcks() {
  if (pending_acks_.valid()) pending_acks_.get();
}

void Dispatcher::Hold(std::vector<Attempt> attempts, const std::string& reason,
                      Millis now) {
  stats_.backend_failures++;
  const Millis delay = options_.backend_backoff.Delay(++backend_failures_);
  held_retry_at_ = now + delay;
  if (!InFlight()) next_check_ = now + check_interval_;
  // Invisible for a whole visibility timeout from now: the failed creates
  // may have taken most of the one the messages were received with.
  std::vector<std::string> handles;
  handles.reserve(attempts.size());
  for (const Attempt& a : attempts) handles.push_back(a.message.receipt_handle);
  const auto extended =
      source_.ChangeVisibilityBatch(handles, options_.visibility_seconds);
  for (size_t i = 0; i < attempts.size(); ++i) {
    if (!extended[i].status.ok()) {
      // Its receipt has lapsed: the queue delivers it again, to us or to
      // another replica.
      Log(LogLevel::kWarn, "message_returned",
          {{"queue", source_.name()},
           {"message_id", attempts[i].message.id},
           {"error", extended[i].status.ToString()}});
      continue;
    }
    attempts[i].visible_until = now + options_.visibility_seconds * 1000LL;
    held_.push_back(std::move(attempts[i]));
  }
  Log(LogLevel::kError, "backend_unavailable",
      {{"queue", source_.name()},
       {"error", reason},
       {"held_messages", held_.size()},
       {"retry_in_ms", delay},
       {"action",
        "holding the messages received and receiving no more until the Job "
        "backend answers"}});
}

void Dispatcher::HandBack() {
  if (held_.empty()) return;
  std::vector<std::string> handles;
  handles.reserve(held_.size());
  for (const Attempt& a : held_) handles.push_back(a.message.receipt_handle);
  long long ok = 0;
  for (const auto& r : source_.ChangeVisibilityBatch(handles, 0)) {
    if (r.status.ok()) ok++;
  }
  stats_.handed_back += ok;
  Log(LogLevel::kInfo, "messages_handed_back",
      {{"queue", source_.name()},
       {"messages", held_.size()},
       {"visible_now", ok}});
  held_.clear();
}

void Dispatcher::CheckTracked(Millis now, bool force) {
  if (!InFlight() || (!force && now < next_check_)) return;
  next_check_ = now + check_interval_;
  std::vector<std::string> complete;
  std::vector<Tracked> still;
  std::vector<std::string> extend;
  for (Attempt& a : held_) {
    if (a.visible_until - now < ExtendWhenLeft()) {
      extend.push_back(a.message.receipt_handle);
      a.visible_until = now + options_.visibility_seconds * 1000LL;
    }
  }
  for (auto& t : tracked_) {
    auto job = backend_.Get(t.job);
    bool unknown = !job.ok() && job.status().code() != StatusCode::kNotFound;
    if (!unknown) {
      if (!job.ok()) {
        // Deleted by someone: let the message come back rather than lose it.
        Release(t.message_id, t.receipt_handle, "job deleted while running");
        stats_.released++;
        continue;
      }
      JobState state = job->state();
      if (state == JobState::kComplete) {
        complete.push_back(t.receipt_handle);
        retry_backoff_.Forget(t.message_id);
        continue;
      }
      if (state == JobState::kFailed) {
        Release(t.message_id, t.receipt_handle, "job failed");
        stats_.released++;
        continue;
      }
    }
    // Running, or its status is unknown for now: keep the message in flight.
    if (t.visible_until - now < ExtendWhenLeft()) {
      extend.push_back(t.receipt_handle);
      t.visible_until = now + options_.visibility_seconds * 1000LL;
    }
    still.push_back(t);
  }
  tracked_ = std::move(still);
  if (!complete.empty()) {
    for (const auto& r : source_.DeleteBatch(complete)) {
      if (r.status.ok())
        stats_.acked++;
      else
        Log(LogLevel::kWarn, "message_delete_failed",
            {{"queue", source_.name()}, {"error", r.status.ToString()}});
    }
  }
  if (!extend.empty()) {
    for (const auto& r :
         source_.ChangeVisibilityBatch(extend, options_.visibility_seconds)) {
      if (!r.status.ok()) {
        Log(LogLevel::kWarn, "visibility_extend_failed",
            {{"queue", source_.name()}, {"error", r.status.ToString()}});
      }
    }
  }
}

void Dispatcher::Run(const std::stop_token& stop,
                     const std::stop_token& cancel) {
  int failures = 0;
  while (!stop.stop_requested()) {
    auto n = RunOnce(stop, cancel);
    if (n.ok()) {
      failures = 0;
      continue;
    }
    Millis delay = options_.retry_backoff.Delay(++failures);
    Log(LogLevel::kError, "dispatch_failed",
        {{"queue", source_.name()},
         {"error", n.status().ToString()},
         {"retry_in_ms", delay}});
    // The backoff can outlast a visibility timeout: on-success messages
    // keep being checked and extended while the loop waits.
    const Millis until = clock_.NowMillis() + delay;
    while (clock_.NowMillis() < until &&
           clock_.SleepUntil(WakeBy(until), stop)) {
      CheckTracked(clock_.NowMillis(), false);
    }
  }
  WaitForAcks();
  HandBack();
}

}  // namespace cruncher::dispatch
