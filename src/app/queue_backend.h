// QueueBackend: the queue side of a command, local or SQS.
//
// Without --queue-url the queue and its dead-letter queue live in the local
// store of the data directory; with --queue-url they are AWS SQS queues (or
// any server speaking SQS, with --endpoint-url), the dead-letter queue found
// through the queue's RedrivePolicy. Commands see the same operations and
// print the same output for both.
//
// Thread-safety: the MessageQueue contract; the rest from one thread.
#ifndef CRUNCHER_APP_QUEUE_BACKEND_H_
#define CRUNCHER_APP_QUEUE_BACKEND_H_

#include <memory>
#include <string>
#include <vector>

#include "app/backends.h"
#include "core/message_queue.h"
#include "local/queue_store.h"

namespace cruncher::app {

class QueueBackend {
 public:
  virtual ~QueueBackend() = default;

  virtual MessageQueue& queue() = 0;
  // Null when the queue has no dead-letter queue (an SQS queue without a
  // redrive policy).
  virtual MessageQueue* dead_letter() = 0;
  // For people: the queue name or URL.
  virtual std::string queue_name() const = 0;
  virtual std::string dead_letter_name() const = 0;  // "" if none

  // What became of one message given to SendAll.
  struct SendResult {
    Status status;
    std::string message_id;  // set when status is OK
  };
  // Sends all messages, batched; one result per message, in order. A failed
  // batch fails only its own messages (the others are still sent), so the
  // caller knows exactly which messages are queued. Locally all messages are
  // one transaction: all are sent or none.
  virtual std::vector<SendResult> SendAll(
      const std::vector<OutgoingMessage>& messages) = 0;
  // Up to `limit` dead-lettered messages. Locally they are read without
  // being received; SQS has no peek, so they are received with visibility 0
  // (visible again at once, their receive count one higher).
  virtual Result<std::vector<Message>> ListDeadLetters(int limit) = 0;
  // Moves dead-lettered messages back to the source queue (at most `max`,
  // ≤0 for all); returns a sentence saying what was done.
  virtual Result<std::string> Redrive(long long max) = 0;

  // The local store, or null for SQS (the SQS endpoint serves a local store).
  virtual local::LocalQueueStore* local_store() { return nullptr; }
};

// Opens the queue backend that `options` name; creates the local queues on
// first use (see QueueDefaults).
Result<std::unique_ptr<QueueBackend>> OpenQueueBackend(
    const BackendOptions& options, const QueueDefaults& defaults = {});

}  // namespace cruncher::app

#endif  // CRUNCHER_APP_QUEUE_BACKEND_H_
