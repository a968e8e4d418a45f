#include "aws/sqs_client.h"

#include <random>

#include "aws/encoding.h"
#include "aws/json_fields.h"
#include "aws/sigv4.h"
#include "core/json_limits.h"

namespace cruncher::aws {
namespace {

using nlohmann::json;

long long JsonInt(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end()) return 0;
  if (it->is_number_integer()) return it->get<long long>();
  if (it->is_string()) {
    try {
      return std::stoll(it->get<std::string>());
    } catch (const std::exception&) {
      return 0;
    }
  }
  return 0;
}

bool IsBinaryType(const std::string& data_type) {
  return data_type.rfind("Binary", 0) == 0;
}

json AttributesJson(const MessageAttributes& attributes) {
  json out = json::object();
  for (const auto& [name, attr] : attributes) {
    json value = {{"DataType", attr.data_type}};
    if (IsBinaryType(attr.data_type)) {
      value["BinaryValue"] = Base64Encode(attr.value);
    } else {
      value["StringValue"] = attr.value;
    }
    out[name] = std::move(value);
  }
  return out;
}

// What SQS counts towards the 256 KiB / 1 MiB limits.
std::size_t PayloadSize(const OutgoingMessage& m) {
  std::size_t n = m.body.size();
  for (const auto& [name, attr] : m.attributes) {
    n += name.size() + attr.data_type.size() + attr.value.size();
  }
  return n;
}

Result<Message> ParseMessage(const json& m) {
  Message out;
  out.id = JsonString(m, "MessageId");
  out.body = JsonString(m, "Body");
  out.receipt_handle = JsonString(m, "ReceiptHandle");
  if (out.id.empty() || out.receipt_handle.empty()) {
    return Internal("message without MessageId or ReceiptHandle");
  }
  if (auto a = m.find("Attributes"); a != m.end() && a->is_object()) {
    out.receive_count =
        static_cast<int>(JsonInt(*a, "ApproximateReceiveCount"));
    out.sent_at = JsonInt(*a, "SentTimestamp");
    out.first_received_at = JsonInt(*a, "ApproximateFirstReceiveTimestamp");
  }
  if (auto a = m.find("MessageAttributes"); a != m.end() && a->is_object()) {
    for (const auto& [name, v] : a->items()) {
      MessageAttribute attr;
      attr.data_type = JsonString(v, "DataType");
      if (IsBinaryType(attr.data_type)) {
        Result<std::string> bytes = Base64Decode(JsonString(v, "BinaryValue"));
        if (!bytes.ok()) {
          return bytes.status().WithContext("message attribute " + name);
        }
        attr.value = *bytes;
      } else {
        attr.value = JsonString(v, "StringValue");
      }
      out.attributes.emplace(name, std::move(attr));
    }
  }
  return out;
}

std::string LastPart(std::string_view s, char sep) {
  std::size_t p = s.rfind(sep);
  return std::string(p == std::string_view::npos ? s : s.substr(p + 1));
}

// Chunks of consecutive indices [0, n) of at most 10 each.
std::vector<std::vector<std::size_t>> ChunksOfTen(std::size_t n) {
  std::vector<std::vector<std::size_t>> chunks;
  for (std::size_t i = 0; i < n; ++i) {
    if (i % kMaxBatchEntries == 0) chunks.emplace_back();
    chunks.back().push_back(i);
  }
  return chunks;
}

SqsClientConfig WithDefaults(SqsClientConfig config) {
  if (!config.jitter) {
    config.jitter = [] {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    };
  }
  return config;
}

}  // namespace

Result<QueueArn> ParseQueueArn(std::string_view arn) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (int i = 0; i < 5; ++i) {
    std::size_t colon = arn.find(':', start);
    if (colon == std::string_view::npos) break;
    parts.emplace_back(arn.substr(start, colon - start));
    start = colon + 1;
  }
  if (parts.size() != 5 || parts[0] != "arn" || parts[2] != "sqs" ||
      start >= arn.size()) {
    return InvalidArgument("not an SQS queue ARN: \"" + std::string(arn) +
                           "\"");
  }
  return QueueArn{parts[1], parts[3], parts[4], std::string(arn.substr(start))};
}

std::string RegionFromSqsHost(std::string_view host) {
  for (std::string_view suffix :
       {".amazonaws.com.cn", ".amazonaws.com", ".api.aws"}) {
    if (host.size() <= suffix.size() || !host.ends_with(suffix)) continue;
    std::string_view head = host.substr(0, host.size() - suffix.size());
    if (head.starts_with("sqs.")) return std::string(head.substr(4));
    if (head.ends_with(".queue"))
      return std::string(head.substr(0, head.size() - 6));
  }
  return "";
}

SqsClient::SqsClient(SqsClientConfig config,
                     std::shared_ptr<net::HttpTransport> transport,
                     std::shared_ptr<CredentialsProvider> credentials,
                     const Clock& clock)
    : config_(WithDefaults(std::move(config))),
      transport_(std::move(transport)),
      credentials_(std::move(credentials)),
      clock_(clock) {}

bool SqsClient::Backoff(Millis delay, const std::stop_token& stop) const {
  if (config_.sleep) {
    config_.sleep(delay);
    return !stop.stop_requested();
  }
  return clock_.SleepFor(delay, stop);
}

Result<json> SqsClient::Call(const std::string& operation, const json& input,
                             const std::string& what, long timeout_ms,
                             const std::stop_token& stop) {
  const std::string context = "sqs " + operation + " " + what;
  const std::string body = input.dump();
  std::string url = config_.endpoint;
  if (url.find('/', url.find("://") + 3) == std::string::npos) url += "/";
  int acquired = 0;
  Status last;
  int attempt = 1;
  for (;; ++attempt) {
    Millis now = clock_.NowMillis() + skew_ms_.load();
    Result<AwsCredentials> creds = credentials_->GetCredentials(now);
    if (!creds.ok()) {
      return creds.status().WithContext(context + ": credentials from " +
                                        credentials_->Describe());
    }
    net::HttpRequest request;
    request.method = "POST";
    request.url = url;
    request.headers = {{"Content-Type", "application/x-amz-json-1.0"},
                       {"X-Amz-Target", "AmazonSQS." + operation}};
    request.body = body;
    request.timeout_ms = timeout_ms;
    request.connect_timeout_ms = config_.connect_timeout_ms;
    request.stop = stop;
    Result<SigV4Parts> signed_parts =
        SignV4(request, *creds, "sqs", config_.region, now);
    if (!signed_parts.ok()) return signed_parts.status().WithContext(context);

    net::HttpOutcome outcome = transport_->Send(request);
    if (outcome.stopped) return outcome.status.WithContext(context);
    ErrorClass error_class;
    if (!outcome.status.ok()) {
      error_class = ErrorClass::kTransient;
      last = outcome.status.WithContext(context);
    } else if (outcome.response.status == 200) {
      bucket_.Release(acquired);
      if (outcome.response.body.empty()) return json::object();
      Result<json> out = ParseJson(outcome.response.body);
      if (!out.ok()) {
        return Internal(context + ": response: " + out.status().message());
      }
      if (!out->is_object()) {
        return Internal(context + ": response is not a JSON object");
      }
      return out;
    } else {
      const net::HttpResponse& r = outcome.response;
      Result<json> err = ParseJson(r.body);
      std::string code, message;
      if (err.ok() && err->is_object()) {
        code = LastPart(JsonString(*err, "__type"), '#');
        if (code.empty()) code = JsonString(*err, "code");
        message = JsonString(*err, "message");
        if (message.empty()) message = JsonString(*err, "Message");
      }
      // awsQueryCompatible services name the legacy code in a header:
      // "AWS.SimpleQueueService.NonExistentQueue;Sender".
      std::string query_code = r.Header("x-amzn-query-error");
      query_code = query_code.substr(0, query_code.find(';'));
      if (code.empty()) code = query_code;
      error_class = ClassifyError(r.status, code, message);
      StatusCode status_code = StatusCodeForError(r.status, code);
      if (status_code == StatusCode::kInvalidArgument && !query_code.empty()) {
        status_code = StatusCodeForError(r.status, query_code);
      }
      std::string text = context + ": HTTP " + std::to_string(r.status);
      if (!code.empty()) text += " " + code;
      if (!query_code.empty() && query_code != code) {
        text += " (" + query_code + ")";
      }
      if (!message.empty()) text += ": " + message;
      last = Status(status_code, text);
      if (error_class == ErrorClass::kClockSkew) {
        std::optional<Millis> server = ParseHttpDate(r.Header("date"));
        if (!server) {
          error_class = ErrorClass::kNonRetryable;
        } else {
          skew_ms_.store(*server - clock_.NowMillis());
        }
      }
    }
    if (error_class == ErrorClass::kNonRetryable) return last;
    if (attempt >= config_.retry.max_attempts) break;
    int cost = bucket_.Acquire(outcome.timed_out);
    if (cost == 0) {
      return last.WithContext("retry budget exhausted after " +
                              std::to_string(attempt) + " attempt(s)");
    }
    acquired += cost;
    if (!Backoff(BackoffDelay(config_.retry, attempt, config_.jitter()),
                 stop)) {
      return last.WithContext("stopped while waiting to retry");
    }
  }
  return last.WithContext("gave up after " + std::to_string(attempt) +
                          " attempts");
}

std::vector<Status> SqsClient::RunBatch(
    const std::string& operation, const std::string& queue_url,
    const std::vector<json>& entries,
    const std::vector<std::vector<std::size_t>>& chunks,
    const std::function<void(std::size_t, const json&)>& on_success) {
  std::vector<Status> results(entries.size());
  for (const auto& chunk : chunks) {
    std::vector<std::size_t> pending = chunk;
    for (int round = 1; !pending.empty(); ++round) {
      if (round > 1) {
        Backoff(BackoffDelay(config_.retry, round - 1, config_.jitter()), {});
      }
      json request = {{"QueueUrl", queue_url}, {"Entries", json::array()}};
      for (std::size_t i : pending) request["Entries"].push_back(entries[i]);
      Result<json> response =
          Call(operation, request, queue_url, config_.request_timeout_ms);
      if (!response.ok()) {
        for (std::size_t i : pending) results[i] = response.status();
        break;
      }
      std::vector<bool> answered(entries.size(), false);
      std::vector<std::size_t> retry;
      auto index_of = [&](const json& e) -> std::optional<std::size_t> {
        std::string id = JsonString(e, "Id");
        try {
          std::size_t i = std::stoul(id);
          if (i < entries.size()) return i;
        } catch (const std::exception&) {
        }
        return std::nullopt;
      };
      if (auto s = response->find("Successful");
          s != response->end() && s->is_array()) {
        for (const auto& e : *s) {
          auto i = index_of(e);
          if (!i) continue;
          answered[*i] = true;
          results[*i] = Status::Ok();
          on_success(*i, e);
        }
      }
      if (auto f = response->find("Failed");
          f != response->end() && f->is_array()) {
        for (const auto& e : *f) {
          auto i = index_of(e);
          if (!i) continue;
          answered[*i] = true;
          auto fault = e.find("SenderFault");
          bool sender_fault =
              fault == e.end() || !fault->is_boolean() || fault->get<bool>();
          std::string code = JsonString(e, "Code");
          results[*i] = Status(
              StatusCodeForError(sender_fault ? 400 : 500, code),
              "sqs " + operation + " " + queue_url + ": entry failed: " + code +
                  ": " + JsonString(e, "Message"));
          if (!sender_fault) retry.push_back(*i);
        }
      }
      for (std::size_t i : pending) {
        if (!answered[i]) {
          results[i] = Internal("sqs " + operation + " " + queue_url +
                                ": entry missing from the response");
        }
      }
      if (round >= config_.retry.max_attempts) break;
      pending = std::move(retry);
    }
  }
  return results;
}

Result<std::vector<Message>> SqsClient::ReceiveMessage(
    const std::string& queue_url, int max_messages, int wait_seconds,
    std::optional<int> visibility_seconds, const std::stop_token& stop) {
  if (max_messages < 1 || max_messages > kMaxBatchEntries) {
    return InvalidArgument("sqs ReceiveMessage " + queue_url +
                           ": max_messages must be 1..10, got " +
                           std::to_string(max_messages));
  }
  if (wait_seconds < 0 || wait_seconds > kMaxWaitSeconds) {
    return InvalidArgument("sqs ReceiveMessage " + queue_url +
                           ": wait_seconds must be 0..20, got " +
                           std::to_string(wait_seconds));
  }
  json request = {
      {"QueueUrl", queue_url},
      {"MaxNumberOfMessages", max_messages},
      {"WaitTimeSeconds", wait_seconds},
      {"MessageSystemAttributeNames",
       {"ApproximateReceiveCount", "SentTimestamp",
        "ApproximateFirstReceiveTimestamp"}},
      {"MessageAttributeNames", {"All"}},
  };
  if (visibility_seconds) request["VisibilityTimeout"] = *visibility_seconds;
  Result<json> response =
      Call("ReceiveMessage", request, queue_url,
           wait_seconds * 1000L + config_.request_timeout_ms, stop);
  std::vector<Message> out;
  if (!response.ok()) {
    // Stopped: no response arrived (the transport abandons only those), so
    // nothing was received; SQS answers an ended wait the same way.
    if (stop.stop_requested()) return out;
    return response.status();
  }
  if (auto m = response->find("Messages");
      m != response->end() && m->is_array()) {
    for (const auto& j : *m) {
      Result<Message> msg = ParseMessage(j);
      if (!msg.ok()) {
        return msg.status().WithContext("sqs ReceiveMessage " + queue_url);
      }
      out.push_back(std::move(msg).value());
    }
  }
  return out;
}

Result<std::string> SqsClient::SendMessage(const std::string& queue_url,
                                           const OutgoingMessage& message) {
  json request = {{"QueueUrl", queue_url}, {"MessageBody", message.body}};
  if (!message.attributes.empty()) {
    request["MessageAttributes"] = AttributesJson(message.attributes);
  }
  if (message.delay_seconds) request["DelaySeconds"] = *message.delay_seconds;
  CRUNCHER_ASSIGN_OR_RETURN(
      json response,
      Call("SendMessage", request, queue_url, config_.request_timeout_ms));
  std::string id = JsonString(response, "MessageId");
  if (id.empty()) {
    return Internal("sqs SendMessage " + queue_url + ": no MessageId in reply");
  }
  return id;
}

std::vector<SendBatchEntryResult> SqsClient::SendMessageBatch(
    const std::string& queue_url,
    const std::vector<OutgoingMessage>& messages) {
  std::vector<SendBatchEntryResult> results(messages.size());
  std::vector<json> entries(messages.size());
  std::vector<std::vector<std::size_t>> chunks;
  std::size_t chunk_bytes = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    results[i].index = i;
    const OutgoingMessage& m = messages[i];
    const std::size_t size = PayloadSize(m);
    if (size > kMaxBatchPayloadBytes) {
      results[i].status =
          InvalidArgument("sqs SendMessageBatch " + queue_url + ": message " +
                          std::to_string(i) + " is " + std::to_string(size) +
                          " bytes, over the 1 MiB limit");
      continue;
    }
    entries[i] = {{"Id", std::to_string(i)}, {"MessageBody", m.body}};
    if (!m.attributes.empty()) {
      entries[i]["MessageAttributes"] = AttributesJson(m.attributes);
    }
    if (m.delay_seconds) entries[i]["DelaySeconds"] = *m.delay_seconds;
    if (chunks.empty() || chunks.back().size() == kMaxBatchEntries ||
        chunk_bytes + size > kMaxBatchPayloadBytes) {
      chunks.emplace_back();
      chunk_bytes = 0;
    }
    chunks.back().push_back(i);
    chunk_bytes += size;
  }
  std::vector<Status> statuses =
      RunBatch("SendMessageBatch", queue_url, entries, chunks,
               [&](std::size_t i, const json& e) {
                 results[i].message_id = JsonString(e, "MessageId");
               });
  for (const auto& chunk : chunks) {
    for (std::size_t i : chunk) results[i].status = statuses[i];
  }
  return results;
}

std::vector<BatchEntryResult> SqsClient::DeleteMessageBatch(
    const std::string& queue_url,
    const std::vector<std::string>& receipt_handles) {
  std::vector<json> entries;
  for (std::size_t i = 0; i < receipt_handles.size(); ++i) {
    entries.push_back(
        {{"Id", std::to_string(i)}, {"ReceiptHandle", receipt_handles[i]}});
  }
  std::vector<Status> statuses =
      RunBatch("DeleteMessageBatch", queue_url, entries,
               ChunksOfTen(entries.size()), [](std::size_t, const json&) {});
  std::vector<BatchEntryResult> out;
  for (std::size_t i = 0; i < receipt_handles.size(); ++i) {
    out.push_back({receipt_handles[i], statuses[i]});
  }
  return out;
}

std::vector<BatchEntryResult> SqsClient::ChangeMessageVisibilityBatch(
    const std::string& queue_url,
    const std::vector<std::string>& receipt_handles, int visibility_seconds) {
  std::vector<json> entries;
  for (std::size_t i = 0; i < receipt_handles.size(); ++i) {
    entries.push_back({{"Id", std::to_string(i)},
                       {"ReceiptHandle", receipt_handles[i]},
                       {"VisibilityTimeout", visibility_seconds}});
  }
  std::vector<Status> statuses =
      RunBatch("ChangeMessageVisibilityBatch", queue_url, entries,
               ChunksOfTen(entries.size()), [](std::size_t, const json&) {});
  std::vector<BatchEntryResult> out;
  for (std::size_t i = 0; i < receipt_handles.size(); ++i) {
    out.push_back({receipt_handles[i], statuses[i]});
  }
  return out;
}

Result<std::map<std::string, std::string>> SqsClient::GetQueueAttributes(
    const std::string& queue_url, const std::vector<std::string>& names) {
  json request = {{"QueueUrl", queue_url}, {"AttributeNames", names}};
  CRUNCHER_ASSIGN_OR_RETURN(json response,
                            Call("GetQueueAttributes", request, queue_url,
                                 config_.request_timeout_ms));
  std::map<std::string, std::string> out;
  if (auto a = response.find("Attributes");
      a != response.end() && a->is_object()) {
    for (const auto& [k, v] : a->items()) {
      out[k] = v.is_string() ? v.get<std::string>() : v.dump();
    }
  }
  return out;
}

Result<QueueDepth> SqsClient::GetQueueDepth(const std::string& queue_url) {
  CRUNCHER_ASSIGN_OR_RETURN(
      auto attrs,
      GetQueueAttributes(queue_url, {"ApproximateNumberOfMessages",
                                     "ApproximateNumberOfMessagesNotVisible",
                                     "ApproximateNumberOfMessagesDelayed"}));
  json j(attrs);
  QueueDepth depth;
  depth.visible = JsonInt(j, "ApproximateNumberOfMessages");
  depth.in_flight = JsonInt(j, "ApproximateNumberOfMessagesNotVisible");
  depth.delayed = JsonInt(j, "ApproximateNumberOfMessagesDelayed");
  return depth;
}

Result<std::optional<RedrivePolicy>> SqsClient::GetRedrivePolicy(
    const std::string& queue_url) {
  CRUNCHER_ASSIGN_OR_RETURN(auto attrs,
                            GetQueueAttributes(queue_url, {"RedrivePolicy"}));
  auto it = attrs.find("RedrivePolicy");
  if (it == attrs.end() || it->second.empty()) {
    return std::optional<RedrivePolicy>();
  }
  Result<json> j = ParseJson(it->second);
  RedrivePolicy policy;
  if (j.ok() && j->is_object()) {
    policy.dead_letter_target_arn = JsonString(*j, "deadLetterTargetArn");
    policy.max_receive_count = static_cast<int>(JsonInt(*j, "maxReceiveCount"));
  }
  if (policy.dead_letter_target_arn.empty()) {
    return InvalidArgument("queue " + queue_url +
                           ": RedrivePolicy is not valid: " + it->second);
  }
  return std::optional<RedrivePolicy>(std::move(policy));
}

Result<std::string> SqsClient::GetQueueArn(const std::string& queue_url) {
  CRUNCHER_ASSIGN_OR_RETURN(auto attrs,
                            GetQueueAttributes(queue_url, {"QueueArn"}));
  auto it = attrs.find("QueueArn");
  if (it == attrs.end()) {
    return Internal("queue " + queue_url + ": no QueueArn attribute");
  }
  return it->second;
}

Result<std::string> SqsClient::GetQueueUrl(
    const std::string& queue_name,
    const std::optional<std::string>& owner_account) {
  json request = {{"QueueName", queue_name}};
  if (owner_account) request["QueueOwnerAWSAccountId"] = *owner_account;
  CRUNCHER_ASSIGN_OR_RETURN(json response,
                            Call("GetQueueUrl", request, "queue " + queue_name,
                                 config_.request_timeout_ms));
  std::string url = JsonString(response, "QueueUrl");
  if (url.empty()) {
    return Internal("sqs GetQueueUrl " + queue_name + ": no QueueUrl in reply");
  }
  return url;
}

Result<std::string> SqsClient::QueueUrlFromArn(const std::string& arn) {
  CRUNCHER_ASSIGN_OR_RETURN(QueueArn parsed, ParseQueueArn(arn));
  return GetQueueUrl(parsed.name, parsed.account);
}

Result<std::string> SqsClient::CreateQueue(
    const std::string& queue_name,
    const std::map<std::string, std::string>& attributes) {
  json request = {{"QueueName", queue_name}};
  if (!attributes.empty()) request["Attributes"] = attributes;
  CRUNCHER_ASSIGN_OR_RETURN(json response,
                            Call("CreateQueue", request, "queue " + queue_name,
                                 config_.request_timeout_ms));
  std::string url = JsonString(response, "QueueUrl");
  if (url.empty()) {
    return Internal("sqs CreateQueue " + queue_name + ": no QueueUrl in reply");
  }
  return url;
}

Result<std::vector<std::string>> SqsClient::ListDeadLetterSourceQueues(
    const std::string& queue_url) {
  std::vector<std::string> out;
  std::string next;
  do {
    json request = {{"QueueUrl", queue_url}, {"MaxResults", 1000}};
    if (!next.empty()) request["NextToken"] = next;
    CRUNCHER_ASSIGN_OR_RETURN(
        json response, Call("ListDeadLetterSourceQueues", request, queue_url,
                            config_.request_timeout_ms));
    if (auto u = response.find("queueUrls");
        u != response.end() && u->is_array()) {
      for (const auto& url : *u) {
        if (url.is_string()) out.push_back(url.get<std::string>());
      }
    }
    next = JsonString(response, "NextToken");
  } while (!next.empty());
  return out;
}

Result<std::string> SqsClient::StartMessageMoveTask(
    const std::string& source_arn,
    const std::optional<std::string>& destination_arn,
    std::optional<int> max_messages_per_second) {
  json request = {{"SourceArn", source_arn}};
  if (destination_arn) request["DestinationArn"] = *destination_arn;
  if (max_messages_per_second) {
    request["MaxNumberOfMessagesPerSecond"] = *max_messages_per_second;
  }
  CRUNCHER_ASSIGN_OR_RETURN(json response,
                            Call("StartMessageMoveTask", request, source_arn,
                                 config_.request_timeout_ms));
  std::string handle = JsonString(response, "TaskHandle");
  if (handle.empty()) {
    return Internal("sqs StartMessageMoveTask " + source_arn +
                    ": no TaskHandle in reply");
  }
  return handle;
}

Result<std::vector<MessageMoveTask>> SqsClient::ListMessageMoveTasks(
    const std::string& source_arn, int max_results) {
  json request = {{"SourceArn", source_arn}, {"MaxResults", max_results}};
  CRUNCHER_ASSIGN_OR_RETURN(json response,
                            Call("ListMessageMoveTasks", request, source_arn,
                                 config_.request_timeout_ms));
  std::vector<MessageMoveTask> out;
  if (auto r = response.find("Results"); r != response.end() && r->is_array()) {
    for (const auto& t : *r) {
      MessageMoveTask task;
      task.task_handle = JsonString(t, "TaskHandle");
      task.status = JsonString(t, "Status");
      task.source_arn = JsonString(t, "SourceArn");
      task.destination_arn = JsonString(t, "DestinationArn");
      task.moved = JsonInt(t, "ApproximateNumberOfMessagesMoved");
      task.to_move = JsonInt(t, "ApproximateNumberOfMessagesToMove");
      task.failure_reason = JsonString(t, "FailureReason");
      task.started_at = JsonInt(t, "StartedTimestamp");
      out.push_back(std::move(task));
    }
  }
  return out;
}

Result<std::vector<Message>> SqsMessageQueue::Receive(
    int max_messages, int wait_seconds, std::optional<int> visibility_seconds,
    const std::stop_token& stop) {
  if (stop.stop_requested()) return std::vector<Message>{};
  return client_->ReceiveMessage(queue_url_, max_messages, wait_seconds,
                                 visibility_seconds, stop);
}

Result<std::string> SqsMessageQueue::Send(const OutgoingMessage& message) {
  return client_->SendMessage(queue_url_, message);
}

std::vector<BatchEntryResult> SqsMessageQueue::DeleteBatch(
    const std::vector<std::string>& receipt_handles) {
  return client_->DeleteMessageBatch(queue_url_, receipt_handles);
}

std::vector<BatchEntryResult> SqsMessageQueue::ChangeVisibilityBatch(
    const std::vector<std::string>& receipt_handles, int visibility_seconds) {
  return client_->ChangeMessageVisibilityBatch(queue_url_, receipt_handles,
                                               visibility_seconds);
}

Result<QueueDepth> SqsMessageQueue::Depth() {
  return client_->GetQueueDepth(queue_url_);
}

Result<std::shared_ptr<SqsClient>> OpenSqsClient(const SqsOptions& options) {
  const EnvVars env = options.env ? *options.env : ProcessEnvironment();
  CRUNCHER_ASSIGN_OR_RETURN(SharedConfig shared, LoadSharedConfig(env));
  const std::string profile = ProfileName(env, options.profile);

  std::optional<Url> queue_url;
  if (options.queue.starts_with("http://") ||
      options.queue.starts_with("https://")) {
    CRUNCHER_ASSIGN_OR_RETURN(queue_url, ParseUrl(options.queue));
  }
  std::optional<std::string> endpoint =
      ConfiguredEndpoint(env, shared, profile, "sqs", options.endpoint_url);
  if (!endpoint && queue_url) endpoint = queue_url->Origin();

  std::string region =
      queue_url ? RegionFromSqsHost(queue_url->host) : std::string();
  if (region.empty()) {
    region = ResolveRegion(env, shared, profile, options.region);
  }
  if (region.empty()) {
    if (!endpoint) {
      return InvalidArgument(
          "no AWS region: pass --region, set AWS_REGION, or set region in "
          "profile \"" +
          profile + "\"");
    }
    region = "us-east-1";  // emulators accept any signing region
  }
  if (!endpoint) endpoint = DefaultEndpoint("sqs", region);
  CRUNCHER_RETURN_IF_ERROR(
      ParseUrl(*endpoint).status().WithContext("SQS endpoint"));

  std::shared_ptr<net::HttpTransport> transport = options.transport;
  if (!transport) transport = std::make_shared<net::CurlHttpTransport>();
  std::shared_ptr<CredentialsProvider> credentials = options.credentials;
  if (!credentials) {
    CredentialChainOptions chain;
    chain.env = env;
    chain.profile = options.profile;
    chain.region = region;
    chain.transport = transport;
    CRUNCHER_ASSIGN_OR_RETURN(credentials, DefaultCredentialsChain(chain));
  }
  SqsClientConfig config;
  config.endpoint = *endpoint;
  config.region = region;
  config.retry = options.retry;
  config.request_timeout_ms = options.request_timeout_ms;
  return std::make_shared<SqsClient>(std::move(config), std::move(transport),
                                     std::move(credentials));
}

Result<std::unique_ptr<SqsMessageQueue>> OpenSqsQueue(
    const SqsOptions& options) {
  if (options.queue.empty()) {
    return InvalidArgument("no queue: pass a queue URL or name");
  }
  CRUNCHER_ASSIGN_OR_RETURN(std::shared_ptr<SqsClient> client,
                            OpenSqsClient(options));
  std::string url = options.queue;
  if (!url.starts_with("http://") && !url.starts_with("https://")) {
    CRUNCHER_ASSIGN_OR_RETURN(url, client->GetQueueUrl(options.queue));
  }
  return std::make_unique<SqsMessageQueue>(std::move(client), std::move(url));
}

}  // namespace cruncher::aws
