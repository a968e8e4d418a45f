// LocalQueueStore: durable SQS-style queues in one SQLite database.
//
// The store keeps any number of standard queues, by name, in
// DATA_DIR/cruncher.db (WAL mode). Semantics follow SQS:
//   - A received message becomes invisible for the visibility timeout
//     (queue default 30 s, or per receive) and gets a receipt handle valid
//     for that delivery only: after it is delivered again, the old handle
//     can neither delete it nor change its visibility.
//   - ApproximateReceiveCount counts deliveries. With a redrive policy, a
//     message about to be delivered for the (maxReceiveCount+1)-th time is
//     moved to the dead-letter queue instead (at receive time, as SQS does).
//   - Long polling waits up to 20 s and returns as soon as a message becomes
//     available, also when another process sent it (see doorbell.h).
//   - Batches of at most 10; bodies plus attributes at most 1 MiB by
//     default; messages older than the retention period are dropped.
// Several processes may open the same data directory at once.
//
// Thread-safety: all methods are safe from any thread; a long poll does not
// block other callers.
#ifndef CRUNCHER_LOCAL_QUEUE_STORE_H_
#define CRUNCHER_LOCAL_QUEUE_STORE_H_

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/message_queue.h"
#include "core/status.h"
#include "local/doorbell.h"
#include "local/sqlite.h"

namespace cruncher::local {

inline constexpr int kMaxBatch = 10;
inline constexpr int kMaxWaitSeconds = 20;
inline constexpr int kMaxVisibilitySeconds = 12 * 3600;
inline constexpr int kMaxMessageBytes = cruncher::kMaxMessageBytes;

struct RedrivePolicy {
  std::string dead_letter_queue;  // queue name
  int max_receive_count = 5;
  bool operator==(const RedrivePolicy&) const = default;
};

struct QueueConfig {
  int visibility_timeout = 30;
  int retention_seconds = 345'600;  // 4 days
  int delay_seconds = 0;
  int receive_wait_seconds = 0;
  int max_message_bytes = kMaxMessageBytes;
  std::optional<RedrivePolicy> redrive;
  // The SQS Policy and RedriveAllowPolicy attributes, kept verbatim for the
  // tools that set them; nothing enforces them. Empty: none.
  std::string policy;
  std::string redrive_allow_policy;
  bool operator==(const QueueConfig&) const = default;
};

// A queue's tags (cost allocation tags in SQS): key → value.
using QueueTags = std::map<std::string, std::string>;

struct QueueInfo {
  std::string name;
  QueueConfig config;
  Millis created_at = 0;
  Millis modified_at = 0;
};

// Validates an SQS queue name: 1-80 of [A-Za-z0-9_-].
Status ValidateQueueName(const std::string& name);

// Queues are scoped by region. The store's plain names are the queues of
// the home region, the one the CLI, the dispatcher and the SQS endpoint's
// configured region share. Queues that SQS clients create in another region
// are stored as "REGION/NAME": '/' never occurs in a queue name, so the two
// cannot collide.
inline constexpr char kRegionSeparator = '/';
std::string RegionalQueueName(const std::string& region,
                              const std::string& name);
// Validates a name as stored: a queue name, optionally after "REGION/"
// (REGION: 1-32 of a-z 0-9 -).
Status ValidateStoredQueueName(const std::string& name);
// Validates ranges (visibility ≤ 12 h, retention 60 s..14 days, ...).
Status ValidateQueueConfig(const QueueConfig& config);

class LocalQueueStore {
 public:
  // Opens DATA_DIR/cruncher.db, creating the directory and schema. Fails
  // with Unavailable naming the directory if it cannot be written.
  static Result<std::unique_ptr<LocalQueueStore>> Open(
      const std::string& data_dir, Durability durability = Durability::kFull,
      Clock& clock = SystemClock::Get());

  // Creates a queue with `tags`. Creating an existing queue with the same
  // config is a no-op that leaves its tags alone; with a different one it
  // is AlreadyExists (SQS's QueueAlreadyExists). InvalidArgument if the
  // redrive policy would close a cycle of two or more queues (see
  // SetQueueConfig).
  Status CreateQueue(const std::string& name, const QueueConfig& config,
                     const QueueTags& tags = {});
  Result<QueueInfo> GetQueue(const std::string& name);
  // InvalidArgument if the redrive policy's dead-letter queue leads back to
  // `name` through the other queues' policies (A -> B -> A): every receive
  // would move such a message on and none would deliver it. A queue that is
  // its own dead-letter queue is allowed; its messages are delivered.
  Status SetQueueConfig(const std::string& name, const QueueConfig& config);
  // Queue names starting with `prefix`, sorted.
  Result<std::vector<std::string>> ListQueues(const std::string& prefix);
  // Deletes the queue and its messages. NotFound if absent.
  Status DeleteQueue(const std::string& name);
  Status Purge(const std::string& name);
  // Adds or replaces tags; removes the tags with these keys (absent keys
  // are ignored). NotFound for an unknown queue.
  Status TagQueue(const std::string& name, const QueueTags& tags);
  Status UntagQueue(const std::string& name,
                    const std::vector<std::string>& keys);
  Result<QueueTags> GetQueueTags(const std::string& name);
  // Queues whose redrive policy names `dead_letter_queue`.
  Result<std::vector<std::string>> DeadLetterSources(
      const std::string& dead_letter_queue);

  // Sends; returns the new message id. InvalidArgument if too large or the
  // delay is out of range; NotFound for an unknown queue.
  Result<std::string> Send(const std::string& queue,
                           const OutgoingMessage& message);
  // Sends several in one transaction: all or none.
  Result<std::vector<std::string>> SendBatch(
      const std::string& queue, const std::vector<OutgoingMessage>& messages);

  Result<std::vector<Message>> Receive(const std::string& queue,
                                       int max_messages, int wait_seconds,
                                       std::optional<int> visibility_seconds,
                                       const std::stop_token& stop = {});
  // One result per handle, in order. A malformed handle fails its entry with
  // InvalidArgument; a stale one (the message was delivered again since,
  // and stays) with FailedPrecondition; an already deleted message counts
  // as deleted.
  std::vector<BatchEntryResult> Delete(const std::string& queue,
                                       const std::vector<std::string>& handles);
  // FailedPrecondition for a message that is not in flight.
  std::vector<BatchEntryResult> ChangeVisibility(
      const std::string& queue, const std::vector<std::string>& handles,
      int visibility_seconds);

  Result<QueueDepth> Depth(const std::string& queue);
  // Up to `limit` messages in delivery order, without receiving them.
  Result<std::vector<Message>> Peek(const std::string& queue, int limit);
  // Moves up to `limit` messages (≤0: all) from `from` to `to` as new
  // messages (new ids, receive count 0): a DLQ redrive. Returns the count.
  Result<long long> MoveMessages(const std::string& from, const std::string& to,
                                 long long limit);

  const std::string& data_dir() const { return data_dir_; }

 private:
  LocalQueueStore(std::string data_dir, std::unique_ptr<Database> db,
                  std::unique_ptr<Doorbell> doorbell, Clock& clock)
      : data_dir_(std::move(data_dir)),
        db_(std::move(db)),
        doorbell_(std::move(doorbell)),
        clock_(clock) {}
  // Helpers below expect mu_ held.
  Result<std::pair<int64_t, QueueInfo>> LoadQueue(const std::string& name);
  Status CheckNoRedriveCycle(const std::string& name,
                             const QueueConfig& config);
  Result<QueueTags> LoadTags(const std::string& name);
  Status StoreTags(const std::string& name, const QueueTags& tags);
  Result<int64_t> InsertMessage(int64_t queue_id, const QueueConfig& config,
                                const OutgoingMessage& message, Millis now,
                                std::string* message_id);
  Result<std::vector<Message>> ReceiveOnce(const std::string& queue, int max,
                                           std::optional<int> visibility,
                                           Millis* next_visible);
  void DropExpired(int64_t queue_id, const QueueConfig& config, Millis now);
  // Runs `action` for each well-formed receipt handle of `queue` in one
  // transaction; a malformed handle fails its own entry. The action sets
  // the entry's outcome in `*entry` and returns an error only when the
  // database fails, which fails every entry (the transaction is rolled
  // back). Takes mu_.
  using HandleAction = std::function<Status(int64_t queue_id, int64_t seq,
                                            const std::string& token,
                                            Millis now, Status* entry)>;
  std::vector<BatchEntryResult> ForEachHandle(
      const std::string& queue, const std::vector<std::string>& handles,
      const HandleAction& action);

  const std::string data_dir_;
  std::mutex mu_;  // serializes use of db_
  std::unique_ptr<Database> db_;
  std::unique_ptr<Doorbell> doorbell_;
  Clock& clock_;
};

// The MessageQueue view of one queue of a store.
class LocalMessageQueue final : public MessageQueue {
 public:
  LocalMessageQueue(LocalQueueStore& store, std::string queue)
      : store_(store), queue_(std::move(queue)) {}
  std::string name() const override { return queue_; }
  Result<std::vector<Message>> Receive(int max_messages, int wait_seconds,
                                       std::optional<int> visibility_seconds,
                                       const std::stop_token& stop) override {
    return store_.Receive(queue_, max_messages, wait_seconds,
                          visibility_seconds, stop);
  }
  Result<std::string> Send(const OutgoingMessage& message) override {
    return store_.Send(queue_, message);
  }
  std::vector<BatchEntryResult> DeleteBatch(
      const std::vector<std::string>& handles) override {
    return store_.Delete(queue_, handles);
  }
  std::vector<BatchEntryResult> ChangeVisibilityBatch(
      const std::vector<std::string>& handles, int seconds) override {
    return store_.ChangeVisibility(queue_, handles, seconds);
  }
  Result<QueueDepth> Depth() override { return store_.Depth(queue_); }

 private:
  LocalQueueStore& store_;
  const std::string queue_;
};

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_QUEUE_STORE_H_
