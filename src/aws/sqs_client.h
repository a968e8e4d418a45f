// SqsClient: Amazon SQS over the JSON protocol (POST /, X-Amz-Target:
// AmazonSQS.<Operation>, application/x-amz-json-1.0), SigV4-signed, with the
// SDKs' standard retry behaviour; and SqsMessageQueue, the MessageQueue the
// dispatcher reads, built on it.
//
// Retries: each call is attempted up to RetryPolicy::max_attempts times when
// it fails with a throttling error, a 5xx, a transport failure or a clock
// skew error (the skew is then corrected from the response's Date header),
// with exponential backoff and full jitter, as long as the client-wide retry
// token bucket has budget. Batch calls additionally retry the entries that
// failed with SenderFault=false. Everything else surfaces at once as a
// Status that names the operation, the queue, the HTTP status and the SQS
// error code and message.
//
// Batch results never claim more than the server confirmed: an entry is OK
// only if it is listed under Successful in a response; if the response is
// lost, every entry of that request is reported failed.
//
// Thread-safety: SqsClient and SqsMessageQueue are safe for concurrent use;
// each in-flight call uses its own pooled connection.
#ifndef CRUNCHER_AWS_SQS_CLIENT_H_
#define CRUNCHER_AWS_SQS_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "aws/aws_config.h"
#include "aws/credentials.h"
#include "aws/retry.h"
#include "core/clock.h"
#include "core/message_queue.h"
#include "core/status.h"
#include "net/http_transport.h"

namespace cruncher::aws {

// SQS service limits the client enforces before sending.
inline constexpr int kMaxBatchEntries = 10;
inline constexpr std::size_t kMaxBatchPayloadBytes = 1024 * 1024;  // 1 MiB
inline constexpr int kMaxWaitSeconds = 20;

struct SqsClientConfig {
  std::string endpoint;  // e.g. "https://sqs.us-east-1.amazonaws.com"
  std::string region;    // the SigV4 signing region
  RetryPolicy retry;
  long connect_timeout_ms = 5000;
  // Timeout of calls other than ReceiveMessage; a receive that long-polls for
  // W seconds gets W s + this.
  long request_timeout_ms = 20000;
  // Seams for tests; by default retry backoffs wait on the client's Clock
  // (ended early by a stop where the call has a stop token) and the jitter
  // is drawn uniform from [0, 1).
  std::function<void(Millis)> sleep;
  std::function<double()> jitter;
};

// The result of one SendMessageBatch entry: `index` into the input.
struct SendBatchEntryResult {
  std::size_t index = 0;
  Status status;
  std::string message_id;  // set when status is OK
};

// A queue's RedrivePolicy attribute.
struct RedrivePolicy {
  std::string dead_letter_target_arn;
  int max_receive_count = 0;
};

// arn:PARTITION:sqs:REGION:ACCOUNT:NAME
struct QueueArn {
  std::string partition;
  std::string region;
  std::string account;
  std::string name;
};
// Fails with InvalidArgument for anything that is not an SQS queue ARN.
Result<QueueArn> ParseQueueArn(std::string_view arn);

// One entry of ListMessageMoveTasks.
struct MessageMoveTask {
  std::string task_handle;  // only for a RUNNING task
  std::string status;       // RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED
  std::string source_arn;
  std::string destination_arn;  // "" = back to the original source queues
  long long moved = 0;          // ApproximateNumberOfMessagesMoved
  long long to_move = 0;        // ApproximateNumberOfMessagesToMove
  std::string failure_reason;
  Millis started_at = 0;
};

class SqsClient final {
 public:
  SqsClient(SqsClientConfig config,
            std::shared_ptr<net::HttpTransport> transport,
            std::shared_ptr<CredentialsProvider> credentials,
            const Clock& clock = SystemClock::Get());

  // ReceiveMessage with ApproximateReceiveCount, SentTimestamp,
  // ApproximateFirstReceiveTimestamp and all message attributes.
  // `max_messages` must be 1..10, `wait_seconds` 0..20 (InvalidArgument
  // otherwise). An empty vector means nothing arrived in time. A stop
  // requested through `stop` abandons the wait (the long poll's connection
  // is closed within about a second) and any retry backoff, and the call
  // returns an empty vector; a response already arriving is read whole.
  Result<std::vector<Message>> ReceiveMessage(
      const std::string& queue_url, int max_messages, int wait_seconds,
      std::optional<int> visibility_seconds, const std::stop_token& stop = {});

  // Returns the new message's id.
  Result<std::string> SendMessage(const std::string& queue_url,
                                  const OutgoingMessage& message);

  // Sends any number of messages in batches of at most 10 entries and 1 MiB.
  // Returns one result per input message, in input order. A message larger
  // than 1 MiB fails with InvalidArgument without being sent.
  std::vector<SendBatchEntryResult> SendMessageBatch(
      const std::string& queue_url,
      const std::vector<OutgoingMessage>& messages);

  // Deletes in batches of 10; one result per handle (id = the handle), in
  // input order.
  std::vector<BatchEntryResult> DeleteMessageBatch(
      const std::string& queue_url,
      const std::vector<std::string>& receipt_handles);

  // Sets the visibility timeout of received messages, in batches of 10; one
  // result per handle (id = the handle), in input order.
  std::vector<BatchEntryResult> ChangeMessageVisibilityBatch(
      const std::string& queue_url,
      const std::vector<std::string>& receipt_handles, int visibility_seconds);

  // The queue's attributes (names as SQS spells them, values as strings).
  Result<std::map<std::string, std::string>> GetQueueAttributes(
      const std::string& queue_url,
      const std::vector<std::string>& names = {"All"});

  // Visible / in flight / delayed counts (approximate, as SQS reports them).
  Result<QueueDepth> GetQueueDepth(const std::string& queue_url);

  // The queue's RedrivePolicy, or nullopt if it has none. Fails with
  // InvalidArgument if the attribute is not valid JSON.
  Result<std::optional<RedrivePolicy>> GetRedrivePolicy(
      const std::string& queue_url);

  // The queue's ARN (QueueArn attribute).
  Result<std::string> GetQueueArn(const std::string& queue_url);

  // NotFound when the queue does not exist.
  Result<std::string> GetQueueUrl(
      const std::string& queue_name,
      const std::optional<std::string>& owner_account = std::nullopt);

  // The URL of the queue an ARN names (GetQueueUrl with the owner account).
  Result<std::string> QueueUrlFromArn(const std::string& arn);

  // Creates the queue (or returns the URL of an identical existing one).
  Result<std::string> CreateQueue(
      const std::string& queue_name,
      const std::map<std::string, std::string>& attributes = {});

  // URLs of the queues whose RedrivePolicy targets this queue (all pages).
  Result<std::vector<std::string>> ListDeadLetterSourceQueues(
      const std::string& queue_url);

  // Starts moving messages out of the dead-letter queue `source_arn` to
  // `destination_arn` (nullopt: back to their original source queues).
  // Returns the task handle. FailedPrecondition/InvalidArgument from SQS
  // when a task is already running or the source is not a DLQ.
  Result<std::string> StartMessageMoveTask(
      const std::string& source_arn,
      const std::optional<std::string>& destination_arn = std::nullopt,
      std::optional<int> max_messages_per_second = std::nullopt);

  // The most recent move tasks of a dead-letter queue (newest first).
  Result<std::vector<MessageMoveTask>> ListMessageMoveTasks(
      const std::string& source_arn, int max_results = 10);

  const SqsClientConfig& config() const { return config_; }
  // Remaining retry budget (for metrics and tests).
  int retry_tokens() const { return bucket_.tokens(); }
  // Server time minus local time, learned from clock skew errors.
  Millis clock_skew_ms() const { return skew_ms_.load(); }

 private:
  // One operation with retries. `what` names the queue for messages. A stop
  // requested through `stop` ends it at once with the last error.
  Result<nlohmann::json> Call(const std::string& operation,
                              const nlohmann::json& input,
                              const std::string& what, long timeout_ms,
                              const std::stop_token& stop = {});
  // Waits `delay` before a retry; false if `stop` ended the wait.
  bool Backoff(Millis delay, const std::stop_token& stop) const;

  // Runs a batch operation over `entries` (each with a unique "Id" equal to
  // its index) in the given chunks, retrying entries that failed with
  // SenderFault=false. Returns one Status per entry; `on_success` is called
  // with each successful result entry.
  std::vector<Status> RunBatch(
      const std::string& operation, const std::string& queue_url,
      const std::vector<nlohmann::json>& entries,
      const std::vector<std::vector<std::size_t>>& chunks,
      const std::function<void(std::size_t, const nlohmann::json&)>&
          on_success);

  const SqsClientConfig config_;
  const std::shared_ptr<net::HttpTransport> transport_;
  const std::shared_ptr<CredentialsProvider> credentials_;
  const Clock& clock_;
  RetryTokenBucket bucket_;
  std::atomic<Millis> skew_ms_{0};
};

// MessageQueue over one SQS queue. name() is the queue URL.
class SqsMessageQueue final : public MessageQueue {
 public:
  SqsMessageQueue(std::shared_ptr<SqsClient> client, std::string queue_url)
      : client_(std::move(client)), queue_url_(std::move(queue_url)) {}

  std::string name() const override { return queue_url_; }
  Result<std::vector<Message>> Receive(int max_messages, int wait_seconds,
                                       std::optional<int> visibility_seconds,
                                       const std::stop_token& stop) override;
  Result<std::string> Send(const OutgoingMessage& message) override;
  std::vector<BatchEntryResult> DeleteBatch(
      const std::vector<std::string>& receipt_handles) override;
  std::vector<BatchEntryResult> ChangeVisibilityBatch(
      const std::vector<std::string>& receipt_handles,
      int visibility_seconds) override;
  Result<QueueDepth> Depth() override;

  const std::string& queue_url() const { return queue_url_; }
  // The client, for operations beyond MessageQueue (attributes, DLQ).
  SqsClient& client() const { return *client_; }
  // The same client, shared: another queue of the same account (the DLQ)
  // reuses its connections and credentials.
  const std::shared_ptr<SqsClient>& shared_client() const { return client_; }

 private:
  const std::shared_ptr<SqsClient> client_;
  const std::string queue_url_;
};

// How to reach SQS. `queue` is a queue URL or a queue name.
struct SqsOptions {
  std::string queue;
  std::string endpoint_url;    // --endpoint-url
  std::string region;          // --region
  std::string profile;         // --profile
  std::optional<EnvVars> env;  // nullopt: the process environment
  RetryPolicy retry;
  long request_timeout_ms = 20000;
  // Overrides for tests and tools; null: libcurl / the default chain.
  std::shared_ptr<net::HttpTransport> transport;
  std::shared_ptr<CredentialsProvider> credentials;
};

// Resolves endpoint, region and credentials from `options` (see
// aws_config.h and credentials.h; a queue URL on an amazonaws.com host
// fixes the region, a custom endpoint without a region signs for us-east-1).
// Fails with InvalidArgument when no region can be found for AWS itself or
// the configuration is broken, with the credential chain's error otherwise.
// `options.queue` is not used.
Result<std::shared_ptr<SqsClient>> OpenSqsClient(const SqsOptions& options);

// OpenSqsClient, then the queue URL: `options.queue` as given if it is a
// URL, else GetQueueUrl(name) (NotFound if the queue does not exist).
// Credentials are fetched lazily, on the first call that needs them.
Result<std::unique_ptr<SqsMessageQueue>> OpenSqsQueue(
    const SqsOptions& options);

// The region of an SQS endpoint on AWS ("sqs.eu-west-1.amazonaws.com",
// "eu-west-1.queue.amazonaws.com"); "" for other hosts.
std::string RegionFromSqsHost(std::string_view host);

}  // namespace cruncher::aws

#endif  // CRUNCHER_AWS_SQS_CLIENT_H_
