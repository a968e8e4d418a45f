// SqsApi: the SQS JSON-protocol operations, served from a LocalQueueStore.
//
// Handle() takes one request as the HTTP layer received it (the operation
// from X-Amz-Target without its "AmazonSQS." prefix, the JSON body, the
// Host header the client used, and the region the request was signed for)
// and returns the HTTP status and JSON body to send.
//
// Queues are scoped by region, as in SQS: a request sees the queues of the
// region it was signed for (unsigned requests: the configured region). The
// configured region's queues are the store's own (local/queue_store.h), the
// ones the rest of Cruncher uses. Queue URLs are built from the Host header
// ("http://HOST/ACCOUNT/NAME") and ARNs from the request's region and the
// account ("arn:aws:sqs:REGION:ACCOUNT:NAME").
//
// Tags and the Policy and RedriveAllowPolicy attributes are stored and
// returned verbatim, as ElasticMQ does; no policy is enforced.
//
// Every failure is an SQS error
// in the shape botocore and the AWS SDKs parse: a "__type" naming the modeled
// exception and, for the x-amzn-query-error header, the legacy query-protocol
// code that SDKs map to exception classes (QueueDoesNotExist is
// "AWS.SimpleQueueService.NonExistentQueue;Sender"). Store errors map to
// those codes: NotFound → QueueDoesNotExist, InvalidArgument →
// InvalidParameterValue (ReceiptHandleIsInvalid for receipt handles),
// FailedPrecondition on visibility → MessageNotInflight, Unavailable → 503
// ServiceUnavailable (clients retry), anything else → 500 InternalError.
//
// Concurrent SendMessage(Batch) and DeleteMessage(Batch) calls on the same
// queue are combined into one store transaction (group_commit.h), so that
// clients in parallel share the cost of each durable commit.
//
// Message move tasks (StartMessageMoveTask) run to completion inside the
// call, in one store transaction; the endpoint remembers the last ten tasks
// per source queue for ListMessageMoveTasks until it stops.
//
// Thread-safety: Handle may be called from many threads at once. A
// ReceiveMessage with a wait blocks its calling thread for up to 20 s, so
// callers run Handle off their I/O threads.
#ifndef CRUNCHER_SQS_ENDPOINT_SQS_API_H_
#define CRUNCHER_SQS_ENDPOINT_SQS_API_H_

#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "local/queue_store.h"
#include "sqs_endpoint/group_commit.h"

namespace cruncher::sqs {

// An SQS error as sent to the client.
struct SqsError {
  int http_status = 400;
  std::string type;  // "__type", e.g. "com.amazonaws.sqs#QueueDoesNotExist"
  std::string query_code;  // x-amzn-query-error code; empty: no header
  bool sender_fault = true;
  std::string message;

  // The short code a client sees: the query code if any, else the type
  // after '#'.
  std::string code() const;
  // "CODE;Sender" / "CODE;Receiver" for the x-amzn-query-error header, or
  // empty.
  std::string query_error_header() const;
  // {"__type": ..., "message": ...}
  std::string body() const;
};

// Errors the HTTP layer raises before an operation runs.
SqsError SerializationError(std::string message);
SqsError UnknownOperationError(std::string message);
SqsError AuthError(int http_status, const std::string& code,
                   std::string message);
SqsError RequestTooLargeError(std::string message);
// A SendMessageBatch whose messages together exceed 1 MiB; `bytes` is what
// was sent.
SqsError BatchRequestTooLong(size_t bytes);
SqsError InternalError(std::string message);

struct ApiResponse {
  int http_status = 200;
  std::string body;           // JSON
  std::string query_error;    // x-amzn-query-error value, or empty
  std::string error_code;     // empty on success (for logs)
  std::string error_message;  // empty on success (for logs)
};

struct SqsApiOptions {
  std::string region = "us-east-1";
  std::string account_id = "000000000000";
};

class SqsApi {
 public:
  SqsApi(local::LocalQueueStore& store, SqsApiOptions options);

  // Runs `operation` ("SendMessage", ...) with the JSON `body`. `host` is the
  // request's Host header, used in the queue URLs returned; `region` the
  // request's signing region (empty: the configured one). Unknown
  // operations get UnknownOperationException; SQS operations this endpoint
  // does not implement (permissions) get UnsupportedOperation. A body
  // that is not a JSON object, or nests deeper than kMaxJsonDepth, gets
  // SerializationException. Once `stop` is requested, a waiting
  // ReceiveMessage returns at once with what it has (usually nothing).
  ApiResponse Handle(std::string_view operation, std::string_view body,
                     std::string_view host, std::string_view region = {},
                     const std::stop_token& stop = {});

  // Whether `operation` is ReceiveMessage, the one that can block.
  static bool MayBlock(std::string_view operation) {
    return operation == "ReceiveMessage";
  }

  static ApiResponse ErrorResponse(const SqsError& error);

 private:
  struct MoveTask {
    std::string handle;
    std::string source_arn;
    std::string destination_arn;
    long long moved = 0;
    std::string status;  // COMPLETED or FAILED
    std::string failure_reason;
    Millis started_at = 0;
  };
  class Call;  // one request's context; defined in the .cc

  std::vector<Result<std::vector<std::string>>> FlushSends(
      const std::string& queue,
      const std::vector<const std::vector<OutgoingMessage>*>& requests);
  std::vector<std::vector<BatchEntryResult>> FlushDeletes(
      const std::string& queue,
      const std::vector<const std::vector<std::string>*>& requests);

  local::LocalQueueStore& store_;
  const SqsApiOptions options_;
  // Concurrent sends and deletes on one queue share a store transaction.
  GroupCommit<std::vector<OutgoingMessage>, Result<std::vector<std::string>>>
      sends_;
  GroupCommit<std::vector<std::string>, std::vector<BatchEntryResult>> deletes_;
  std::mutex tasks_mu_;
  std::map<std::string, std::deque<MoveTask>> tasks_;  // by source ARN
};

}  // namespace cruncher::sqs

#endif  // CRUNCHER_SQS_ENDPOINT_SQS_API_H_
