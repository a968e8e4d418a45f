// MessageQueue: one queue with SQS semantics, the source the dispatcher reads.
//
// Implementations: the durable local queue (local/) and AWS SQS (aws/). A
// received message stays in the queue, invisible, until it is deleted with
// its receipt handle or its visibility timeout expires; then it is delivered
// again with a higher receive count. Every method that talks to a server or a
// database returns a Status naming the queue; nothing is retried silently
// except where the method says so.
//
// Thread-safety: implementations are safe for concurrent use.
#ifndef CRUNCHER_CORE_MESSAGE_QUEUE_H_
#define CRUNCHER_CORE_MESSAGE_QUEUE_H_

#include <map>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace cruncher {

// An SQS message attribute (String, Number or Binary; binary kept as bytes).
struct MessageAttribute {
  std::string data_type = "String";
  std::string value;
  bool operator==(const MessageAttribute&) const = default;
};
using MessageAttributes = std::map<std::string, MessageAttribute>;

struct Message {
  std::string id;              // stable across redeliveries
  std::string body;            // verbatim
  std::string receipt_handle;  // valid for this delivery only
  int receive_count = 0;       // ApproximateReceiveCount, 1 on first delivery
  Millis sent_at = 0;          // SentTimestamp
  Millis first_received_at = 0;
  MessageAttributes attributes;
  // The AWSTraceHeader system attribute (an X-Ray trace header) the sender
  // gave, verbatim; empty if none.
  std::string aws_trace_header{};
};

struct OutgoingMessage {
  std::string body;
  MessageAttributes attributes;
  // Unset: the queue's default delay. A value, 0 included, overrides it.
  std::optional<int> delay_seconds = std::nullopt;
  std::string aws_trace_header{};  // see Message
};

// SQS's limit on one message, its body and attributes together.
inline constexpr int kMaxMessageBytes = 1024 * 1024;
// SQS's limit on the message attributes of one message.
inline constexpr size_t kMaxMessageAttributes = 10;

// What SQS counts against that limit: the body plus each attribute's name,
// data type and value.
inline size_t MessageSize(const OutgoingMessage& message) {
  size_t size = message.body.size();
  for (const auto& [name, attribute] : message.attributes) {
    size += name.size() + attribute.data_type.size() + attribute.value.size();
  }
  return size;
}

// Outcome of one entry of a batch call; `status` is OK or why it failed.
struct BatchEntryResult {
  std::string id;  // the caller's entry id (or the receipt handle)
  Status status;
};

struct QueueDepth {
  long long visible = 0;    // ApproximateNumberOfMessages
  long long in_flight = 0;  // ApproximateNumberOfMessagesNotVisible
  long long delayed = 0;    // ApproximateNumberOfMessagesDelayed
};

class MessageQueue {
 public:
  virtual ~MessageQueue() = default;

  // A name for logs and errors (the queue name or URL).
  virtual std::string name() const = 0;

  // Receives up to `max_messages` (1..10), waiting up to `wait_seconds`
  // (0..20) for the first one to arrive. `visibility_seconds` overrides the
  // queue's visibility timeout. Returns an empty vector when nothing arrived.
  // A stop requested through `stop` ends the wait early: the call then
  // returns what it has (usually nothing, as SQS does at the end of a wait)
  // within about a second; messages it had already received are returned,
  // never dropped. A stop already requested when the call starts receives
  // nothing.
  virtual Result<std::vector<Message>> Receive(
      int max_messages, int wait_seconds, std::optional<int> visibility_seconds,
      const std::stop_token& stop) = 0;

  // Sends one message; returns its message id.
  virtual Result<std::string> Send(const OutgoingMessage& message) = 0;

  // Deletes received messages. A stale receipt handle (the message was
  // delivered again since) fails that entry and deletes nothing.
  virtual std::vector<BatchEntryResult> DeleteBatch(
      const std::vector<std::string>& receipt_handles) = 0;

  // Sets the remaining invisibility of received messages (0 = visible now).
  virtual std::vector<BatchEntryResult> ChangeVisibilityBatch(
      const std::vector<std::string>& receipt_handles,
      int visibility_seconds) = 0;

  virtual Result<QueueDepth> Depth() = 0;
};

}  // namespace cruncher

#endif  // CRUNCHER_CORE_MESSAGE_QUEUE_H_
