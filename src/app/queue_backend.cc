#include "app/queue_backend.h"

#include <optional>
#include <set>

#include "aws/sqs_client.h"

namespace cruncher::app {
namespace {

class LocalQueueBackend final : public QueueBackend {
 public:
  LocalQueueBackend(std::unique_ptr<local::LocalQueueStore> store,
                    std::string queue, std::string dlq)
      : store_(std::move(store)),
        queue_(*store_, std::move(queue)),
        dead_letter_(*store_, std::move(dlq)) {}

  MessageQueue& queue() override { return queue_; }
  MessageQueue* dead_letter() override { return &dead_letter_; }
  std::string queue_name() const override { return queue_.name(); }
  std::string dead_letter_name() const override { return dead_letter_.name(); }
  local::LocalQueueStore* local_store() override { return store_.get(); }

  std::vector<SendResult> SendAll(
      const std::vector<OutgoingMessage>& messages) override {
    // One transaction for the lot: durable, and one disk sync.
    auto ids = store_->SendBatch(queue_.name(), messages);
    std::vector<SendResult> results(messages.size());
    for (size_t i = 0; i < results.size(); ++i) {
      if (ids.ok()) {
        results[i].message_id = (*ids)[i];
      } else {
        results[i].status = ids.status();
      }
    }
    return results;
  }
  Result<std::vector<Message>> ListDeadLetters(int limit) override {
    return store_->Peek(dead_letter_.name(), limit);
  }
  Result<std::string> Redrive(long long max) override {
    CRUNCHER_ASSIGN_OR_RETURN(
        long long moved,
        store_->MoveMessages(dead_letter_.name(), queue_.name(), max));
    return "moved " + std::to_string(moved) + " message" +
           (moved == 1 ? "" : "s") + " from " + dead_letter_.name() +
           " back to " + queue_.name();
  }

 private:
  std::unique_ptr<local::LocalQueueStore> store_;
  local::LocalMessageQueue queue_;
  local::LocalMessageQueue dead_letter_;
};

class SqsQueueBackend final : public QueueBackend {
 public:
  // `redrive_destination_arn`: where `Redrive` moves messages; nullopt for
  // the dead-letter queue's source queues (SQS's default).
  SqsQueueBackend(std::unique_ptr<aws::SqsMessageQueue> queue,
                  std::unique_ptr<aws::SqsMessageQueue> dead_letter,
                  std::string dead_letter_arn,
                  std::optional<std::string> redrive_destination_arn)
      : queue_(std::move(queue)),
        dead_letter_(std::move(dead_letter)),
        dead_letter_arn_(std::move(dead_letter_arn)),
        redrive_destination_arn_(std::move(redrive_destination_arn)) {}

  MessageQueue& queue() override { return *queue_; }
  MessageQueue* dead_letter() override { return dead_letter_.get(); }
  std::string queue_name() const override { return queue_->queue_url(); }
  std::string dead_letter_name() const override {
    return dead_letter_ ? dead_letter_->queue_url() : "";
  }

  std::vector<SendResult> SendAll(
      const std::vector<OutgoingMessage>& messages) override {
    std::vector<SendResult> results(messages.size());
    for (auto& r :
         queue_->client().SendMessageBatch(queue_->queue_url(), messages)) {
      results[r.index] = {std::move(r.status), std::move(r.message_id)};
    }
    return results;
  }

  Result<std::vector<Message>> ListDeadLetters(int limit) override {
    if (!dead_letter_) return NoDeadLetterQueue();
    std::vector<Message> out;
    std::set<std::string> seen;
    // A few receives: SQS samples servers, so one call may miss messages.
    for (int round = 0; round < 5 && static_cast<int>(out.size()) < limit;
         ++round) {
      CRUNCHER_ASSIGN_OR_RETURN(
          auto got, dead_letter_->Receive(std::min(10, limit), 0, 0, {}));
      if (got.empty()) break;
      for (auto& m : got) {
        if (seen.insert(m.id).second && static_cast<int>(out.size()) < limit) {
          out.push_back(std::move(m));
        }
      }
    }
    return out;
  }

  Result<std::string> Redrive(long long max) override {
    if (!dead_letter_) return NoDeadLetterQueue();
    if (max > 0) {
      return InvalidArgument(
          "--max works with the local queue only: SQS's StartMessageMoveTask "
          "moves every message");
    }
    auto handle = queue_->client().StartMessageMoveTask(
        dead_letter_arn_, redrive_destination_arn_, std::nullopt);
    if (!handle.ok() && redrive_destination_arn_ &&
        handle.status().code() == StatusCode::kInvalidArgument) {
      // SQS moves messages only out of a queue that some queue's
      // RedrivePolicy names; a --dlq-url queue need not be one.
      return Status(handle.status().code(),
                    handle.status().message() +
                        " (SQS redrives only from a queue that is the "
                        "dead-letter queue of some queue's RedrivePolicy)");
    }
    if (!handle.ok()) return handle.status();
    return "started message move task " + *handle + " from " +
           dead_letter_->queue_url() + " back to " +
           (redrive_destination_arn_ ? queue_->queue_url()
                                     : std::string("its source queues"));
  }

 private:
  Status NoDeadLetterQueue() const {
    return FailedPrecondition("queue " + queue_->queue_url() +
                              " has no RedrivePolicy, so no dead-letter "
                              "queue; name one with --dlq-url");
  }
  std::unique_ptr<aws::SqsMessageQueue> queue_;
  std::unique_ptr<aws::SqsMessageQueue> dead_letter_;
  std::string dead_letter_arn_;
  std::optional<std::string> redrive_destination_arn_;
};

Result<std::unique_ptr<QueueBackend>> OpenSqs(const BackendOptions& options) {
  aws::SqsOptions sqs;
  sqs.queue = options.queue_url;
  sqs.endpoint_url = options.endpoint_url;
  sqs.region = options.region;
  sqs.profile = options.profile;
  CRUNCHER_ASSIGN_OR_RETURN(auto queue, aws::OpenSqsQueue(sqs));
  if (!options.dlq_url.empty()) {
    // Named by the operator: it need not be the queue's redrive target, so
    // a redrive names this queue as the destination instead of relying on
    // SQS's "back to the source queues". Its ARN (needed for that move)
    // also proves it exists before any message is sent there.
    // A queue name is looked up as --queue-url's is.
    Result<std::string> dead_letter_url =
        options.dlq_url.find("://") == std::string::npos
            ? queue->client().GetQueueUrl(options.dlq_url)
            : Result<std::string>(options.dlq_url);
    Result<std::string> dead_letter_arn =
        dead_letter_url.ok() ? queue->client().GetQueueArn(*dead_letter_url)
                             : Result<std::string>(dead_letter_url.status());
    if (!dead_letter_arn.ok()) {
      return dead_letter_arn.status().WithContext("--dlq-url " +
                                                  options.dlq_url);
    }
    auto dead_letter = std::make_unique<aws::SqsMessageQueue>(
        queue->shared_client(), *dead_letter_url);
    CRUNCHER_ASSIGN_OR_RETURN(std::string queue_arn,
                              queue->client().GetQueueArn(queue->queue_url()));
    if (queue_arn == *dead_letter_arn) {
      // A poison message would be sent back to where it came from, forever.
      return InvalidArgument("--dlq-url " + options.dlq_url +
                             " is the queue itself (" + queue_arn + ")");
    }
    return std::unique_ptr<QueueBackend>(
        new SqsQueueBackend(std::move(queue), std::move(dead_letter),
                            std::move(*dead_letter_arn), std::move(queue_arn)));
  }
  CRUNCHER_ASSIGN_OR_RETURN(
      auto policy, queue->client().GetRedrivePolicy(queue->queue_url()));
  std::unique_ptr<aws::SqsMessageQueue> dead_letter;
  std::string dead_letter_arn;
  if (policy) {
    dead_letter_arn = policy->dead_letter_target_arn;
    CRUNCHER_ASSIGN_OR_RETURN(std::string url,
                              queue->client().QueueUrlFromArn(dead_letter_arn));
    dead_letter =
        std::make_unique<aws::SqsMessageQueue>(queue->shared_client(), url);
  }
  return std::unique_ptr<QueueBackend>(
      new SqsQueueBackend(std::move(queue), std::move(dead_letter),
                          std::move(dead_letter_arn), std::nullopt));
}

}  // namespace

Result<std::unique_ptr<QueueBackend>> OpenQueueBackend(
    const BackendOptions& options, const QueueDefaults& defaults) {
  if (!options.dlq_url.empty() && options.queue_url.empty()) {
    return InvalidArgument(
        "--dlq-url names the dead-letter queue of an SQS queue: give "
        "--queue-url too (the local queue's is --dlq)");
  }
  if (!options.queue_url.empty()) {
    auto opened = OpenSqs(options);
    if (!opened.ok())
      return opened.status().WithContext("queue " + options.queue_url);
    return opened;
  }
  CRUNCHER_ASSIGN_OR_RETURN(auto store, OpenLocalQueues(options, defaults));
  return std::unique_ptr<QueueBackend>(new LocalQueueBackend(
      std::move(store), options.queue, options.dlq_name()));
}

}  // namespace cruncher::app
