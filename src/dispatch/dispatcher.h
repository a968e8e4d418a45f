// Dispatcher: the controller loop, queue → render → create Job → ack.
//
// Generic over MessageQueue and JobBackend, so the same loop drives the
// local executor and Kubernetes. One step per message, idempotent:
//   1. render the Job from the template (the body is the `task` annotation);
//   2. create it; AlreadyExists for a Job we own with this message's id is
//      success (a redelivered message makes no duplicate);
//   3. acknowledge by strategy:
//      on-create:  delete the message at once;
//      on-success: keep it in flight, extend its visibility while the Job
//                  runs, delete it when the Job completes, and when the Job
//                  fails let it reappear (after a backoff) so the queue's
//                  redrive policy moves it to the DLQ after maxReceiveCount.
// Poison messages (not a JSON object, a missing variable, a Job the backend
// rejects) are never dropped: with a dead-letter queue they are sent there
// with the reason in the `cruncher-error` attribute and then deleted;
// without one they stay for the queue's own redrive.
//
// A failed create is the backend's fault, not the message's, when no create
// of the batch got an answer (the API server is down, refuses our
// credentials, lacks the namespace): then every receive would count toward
// the queue's maxReceiveCount and the redrive policy would move valid
// messages to the DLQ. So the batch is held instead: its messages stay
// received and invisible (extended like on-success ones), nothing more is
// received, and the creates are tried again after a backoff (1 s .. 30 s)
// until the backend answers. When some creates of a batch succeed, the
// others failed for their own reasons: they return to the queue after a
// per-message exponential backoff.
// `max_active` stops receiving while that many Jobs of ours are unfinished;
// `create_per_second` caps Job creations with a token bucket (the API
// server's protection); a batch takes no more messages than either allows.
//
// Every wait (the long poll, backpressure, the backoff after a failure) goes
// through the Clock and the caller's stop token, so a stop ends the loop at
// once and tests drive time with a FakeClock. A stop lets the creates in
// progress finish (a second token, `cancel`, ends them), then hands the
// messages it holds back to the queue at once (visibility 0).
//
// Several dispatchers of one queue may run at once, each on its own thread
// (`watch --receivers N`): throughput comes from concurrent receives and
// creates, not from one loop. They share a ReceiverGroup, which keeps
// max_active exact across them and lets all but the first idle while the
// queue is shallow, so an idle queue costs one long poll per 20 s.
//
// Thread-safety: one thread runs a dispatcher's loop; stats() may be read
// from others; a ReceiverGroup is safe for concurrent use.
#ifndef CRUNCHER_DISPATCH_DISPATCHER_H_
#define CRUNCHER_DISPATCH_DISPATCHER_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "core/backoff.h"
#include "core/clock.h"
#include "core/job_backend.h"
#include "core/message_queue.h"
#include "core/template.h"

namespace cruncher::dispatch {

enum class AckStrategy { kOnCreate, kOnSuccess };
// "on-create" / "on-success".
std::optional<AckStrategy> ParseAckStrategy(const std::string& text);

// Message attribute names set on dead-lettered messages.
inline constexpr const char* kErrorAttribute = "cruncher-error";
inline constexpr const char* kSourceQueueAttribute = "cruncher-source-queue";
inline constexpr const char* kSourceMessageIdAttribute =
    "cruncher-source-message-id";

// What the dispatchers (receivers) of one queue share.
class ReceiverGroup {
 public:
  // Of the `room` left under max_active, takes up to `want` for a receive,
  // less what the others have taken and not yet created.
  int Reserve(int want, int room);
  // Gives back what Reserve took, once those Jobs are counted (created) or
  // will not be.
  void Release(int taken);
  // A receive came back full (the queue is deep: more receivers help) or
  // not.
  void SetDeep(bool deep);
  // Waits until the queue is deep; false if `stop` came first.
  bool WaitUntilDeep(const std::stop_token& stop);

 private:
  std::mutex mu_;
  std::condition_variable_any deep_changed_;
  int reserved_ = 0;
  bool deep_ = false;
};

struct DispatcherOptions {
  AckStrategy ack = AckStrategy::kOnCreate;
  int max_active = 0;            // 0: no limit
  double create_per_second = 0;  // 0: no limit; burst of 10 otherwise
  int wait_seconds = 20;         // long poll
  // on-success: how long a received message stays invisible, renewed while
  // its Job runs.
  int visibility_seconds = 30;
  // on-success Job status checks; shortened for short visibility timeouts
  // (see CheckInterval in dispatcher.cc).
  Millis check_interval = 2'000;
  // Backoff for transient errors and failed Jobs (on-success).
  ExponentialBackoff retry_backoff{1'000, 300'000};
  // Between tries of a held batch while the backend fails.
  ExponentialBackoff backend_backoff{1'000, 30'000};
  // Messages whose failure counts are kept (see ItemBackoff).
  std::size_t backoff_capacity = ItemBackoff::kDefaultCapacity;
  // Several receivers of one queue: the group they share, and whether this
  // one only receives while the queue is deep (all but the first).
  ReceiverGroup* group = nullptr;
  bool only_when_deep = false;
  // on-create: delete a batch's messages while the next batch is received
  // and created, not before (one round trip less per batch; a crash in
  // between only means a redelivery that meets its Job).
  bool overlap_acks = false;
};

struct DispatcherStats {
  std::atomic<long long> receive_calls{0};  // requests to the source queue
  std::atomic<long long> received{0};
  std::atomic<long long> jobs_created{0};
  std::atomic<long long> jobs_existing{0};  // redeliveries of known messages
  std::atomic<long long> acked{0};          // messages deleted after success
  std::atomic<long long> poison{0};
  std::atomic<long long> dead_lettered{0};
  std::atomic<long long> transient_errors{0};
  std::atomic<long long> released{
      0};  // on-success: failed Job, message returned
  // Batches held because the backend failed, and the messages handed back
  // to the queue at a stop.
  std::atomic<long long> backend_failures{0};
  std::atomic<long long> handed_back{0};

  // Adds another dispatcher's counts (the receivers of one queue).
  DispatcherStats& operator+=(const DispatcherStats& other);
};

class Dispatcher {
 public:
  // `dead_letter` may be null (no DLQ: poison messages are left in the
  // queue, to return after the visibility timeout).
  Dispatcher(MessageQueue& source, MessageQueue* dead_letter,
             JobBackend& backend, const JobTemplate& job_template,
             DispatcherOptions options, Clock& clock = SystemClock::Get());

  // One iteration: respect max_active and the create rate (waiting through
  // the clock when neither allows a message now), receive a batch (long
  // poll), handle each message, then check on-success Jobs that are due.
  // Returns the number of messages received; errors are logged and counted,
  // and only a failure to reach the queue or the backend at all is returned.
  // A stop requested through `stop` ends any wait early (the receive then
  // returns what it has, usually nothing); `cancel` ends the creates in
  // progress (their messages are then held, their outcome unknown).
  Result<int> RunOnce(const std::stop_token& stop = {},
                      const std::stop_token& cancel = {});
  // Loops until `stop` is requested; after a failed iteration it waits an
  // exponential backoff (1 s .. retry_backoff.cap) through the clock. Then
  // hands the held messages back (HandBack).
  void Run(const std::stop_token& stop, const std::stop_token& cancel = {});
  // Makes the held messages (received, no Job yet) visible again at once,
  // for another replica or the next start.
  void HandBack();
  // Waits for the acks in flight (overlap_acks); Run does at its end.
  void WaitForAcks();

  const DispatcherStats& stats() const { return stats_; }
  // on-success: messages held in flight for running Jobs.
  size_t tracked() const { return tracked_.size(); }
  // Messages whose failure count is kept for their retry backoff.
  size_t backoff_entries() const { return retry_backoff_.size(); }
  // Messages held, invisible, while the backend fails.
  size_t held() const { return held_.size(); }

 private:
  struct Tracked {
    std::string job;
    std::string message_id;
    std::string receipt_handle;
    Millis visible_until = 0;
  };
  // A rendered message whose Job is to be created.
  struct Attempt {
    Message message;
    std::string job;
    nlohmann::json manifest;
    Millis visible_until = 0;  // while held
  };
  enum class Outcome { kCreated, kPoison, kTransient };
  // What the create result means for the message; `reason` says why for
  // anything but kCreated.
  Outcome Classify(const Message& message, const std::string& job_name,
                   const Status& created, std::string* reason);
  void Poison(const Message& message, const std::string& reason);
  void Release(const std::string& message_id, const std::string& handle,
               const std::string& why);
  // Creates the attempts' Jobs and acts on each outcome (above).
  void CreateAndSettle(std::vector<Attempt> attempts, Millis now,
                       const std::stop_token& cancel);
  void Hold(std::vector<Attempt> attempts, const std::string& reason,
            Millis now);
  // Deletes acked messages (their Jobs exist).
  void Ack(const std::vector<std::string>& handles);
  // Checks on-success Jobs and extends what is in flight (tracked and held).
  void CheckTracked(Millis now, bool force);
  bool InFlight() const { return !tracked_.empty() || !held_.empty(); }
  int ReceiveWait(Millis now) const;
  // A wait that should end at `t` ends by the next on-success check instead
  // when messages are tracked, so no wait outlasts their visibility.
  Millis WakeBy(Millis t) const;
  // on-success: extend a message's visibility when less than this remains.
  Millis ExtendWhenLeft() const;

  MessageQueue& source_;
  MessageQueue* dead_letter_;
  JobBackend& backend_;
  const JobTemplate& template_;
  const DispatcherOptions options_;
  Clock& clock_;
  DispatcherStats stats_;
  ItemBackoff retry_backoff_;
  std::vector<Tracked> tracked_;
  std::vector<Attempt> held_;
  std::future<void> pending_acks_;  // overlap_acks: the last batch's
  Millis held_retry_at_ = 0;
  int backend_failures_ = 0;  // consecutive held tries
  Millis next_check_ = 0;
  const Millis check_interval_;  // on-success, adapted to the visibility
  std::optional<TokenBucket> create_bucket_;
};

}  // namespace cruncher::dispatch

#endif  // CRUNCHER_DISPATCH_DISPATCHER_H_
