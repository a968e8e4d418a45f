#include "sqs_endpoint/sqs_api.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <utility>
#include <variant>
#include <vector>

#include "core/json_limits.h"
#include "core/random_id.h"
#include "sqs_endpoint/message_md5.h"

namespace cruncher::sqs {
namespace {

using Json = nlohmann::json;

// A value or the SqsError to answer with.
template <typename T>
class Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}         // NOLINT: implicit
  Expected(SqsError error) : v_(std::move(error)) {}  // NOLINT: implicit
  bool ok() const { return v_.index() == 0; }
  T& value() { return std::get<0>(v_); }
  SqsError& error() { return std::get<1>(v_); }

 private:
  std::variant<T, SqsError> v_;
};

#define SQS_ASSIGN_OR_RETURN(lhs, expr) \
  SQS_ASSIGN_OR_RETURN_IMPL(CRUNCHER_CONCAT(_sqs_, __LINE__), lhs, expr)
#define SQS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp.error());   \
  lhs = std::move(tmp.value())

SqsError Err(const std::string& shape, std::string query_code,
             std::string message, int status = 400) {
  return SqsError{status, "com.amazonaws.sqs#" + shape, std::move(query_code),
                  status < 500, std::move(message)};
}

SqsError QueueDoesNotExist() {
  return Err("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue",
             "The specified queue does not exist.");
}
SqsError InvalidParameterValue(std::string message) {
  return Err("InvalidParameterValue", "InvalidParameterValue",
             std::move(message));
}
SqsError MissingParameter(const std::string& name) {
  return Err("MissingParameter", "MissingParameter",
             "The request must contain the parameter " + name + ".");
}
SqsError InvalidAttributeName(std::string message) {
  return Err("InvalidAttributeName", "InvalidAttributeName",
             std::move(message));
}
SqsError InvalidAttributeValue(std::string message) {
  return Err("InvalidAttributeValue", "InvalidAttributeValue",
             std::move(message));
}
SqsError ReceiptHandleIsInvalid(const std::string& handle) {
  return Err("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid",
             "The input receipt handle \"" + handle +
                 "\" is not a valid receipt handle.");
}
SqsError MessageNotInflight() {
  return Err("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight",
             "The message referred to isn't in flight.");
}
SqsError UnsupportedOperation(std::string message) {
  return Err("UnsupportedOperation",
             "AWS.SimpleQueueService.UnsupportedOperation", std::move(message));
}
SqsError InvalidAddress(const std::string& url) {
  return Err("InvalidAddress", "InvalidAddress",
             "The address " + url + " is not valid for this endpoint.");
}
SqsError ResourceNotFound(std::string message) {
  return Err("ResourceNotFoundException", "ResourceNotFoundException",
             std::move(message));
}

// A store Status as the SQS error a client expects for it.
SqsError FromStatus(const Status& status) {
  switch (status.code()) {
    case StatusCode::kNotFound:
      return QueueDoesNotExist();
    case StatusCode::kInvalidArgument:
      return InvalidParameterValue(status.message());
    case StatusCode::kAlreadyExists:
      return Err("QueueNameExists", "QueueAlreadyExists", status.message());
    case StatusCode::kThrottled:
    case StatusCode::kUnavailable:
      return Err("ServiceUnavailable", "ServiceUnavailable", status.message(),
                 503);
    default:
      return Err("InternalError", "InternalError", status.message(), 500);
  }
}

bool ParseNonNegativeInt(const std::string& text, int* out) {
  if (text.empty() || text.size() > 9) return false;
  for (char c : text) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  }
  *out = std::stoi(text);
  return true;
}

std::string Base64Encode(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::string> Base64Decode(const std::string& text) {
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  if (!text.empty() && text.back() == '=') ++pad;
  if (text.size() > 1 && text[text.size() - 2] == '=') ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

// Characters SQS accepts in bodies and string attribute values: #x9 | #xA |
// #xD | #x20-#xD7FF | #xE000-#xFFFD | #x10000-#x10FFFF. The JSON parser has
// already rejected invalid UTF-8 (and so surrogates).
std::optional<std::string> InvalidCharacter(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 && c != 0x9 && c != 0xA && c != 0xD) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "#x%X", c);
      return std::string(buf);
    }
    if (c == 0xEF && i + 2 < text.size() &&
        static_cast<unsigned char>(text[i + 1]) == 0xBF &&
        (static_cast<unsigned char>(text[i + 2]) & 0xFE) == 0xBE) {
      return static_cast<unsigned char>(text[i + 2]) == 0xBE ? "#xFFFE"
                                                             : "#xFFFF";
    }
  }
  return std::nullopt;
}

bool IsNumber(const std::string& s) {
  size_t i = 0;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
  size_t digits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
    ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    size_t exp = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])))
      ++i, ++exp;
    if (exp == 0) return false;
  }
  return i == s.size();
}

bool ValidBatchId(const std::string& id) {
  if (id.empty() || id.size() > 80) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
  });
}

// The size SQS counts for one SendMessageBatch entry as sent, valid or not:
// its body and its message attributes' names, types and values (binary
// values decoded).
size_t RawEntrySize(const Json& entry) {
  size_t size = 0;
  if (auto body = entry.find("MessageBody");
      body != entry.end() && body->is_string()) {
    size += body->get_ref<const std::string&>().size();
  }
  auto attrs = entry.find("MessageAttributes");
  if (attrs == entry.end() || !attrs->is_object()) return size;
  for (const auto& [name, value] : attrs->items()) {
    size += name.size();
    if (!value.is_object()) continue;
    for (const char* field : {"DataType", "StringValue"}) {
      if (auto f = value.find(field); f != value.end() && f->is_string())
        size += f->get_ref<const std::string&>().size();
    }
    if (auto bin = value.find("BinaryValue");
        bin != value.end() && bin->is_string()) {
      const std::string& text = bin->get_ref<const std::string&>();
      size_t decoded = text.size() / 4 * 3;
      if (decoded > 0 && text.back() == '=') --decoded;
      if (decoded > 0 && text[text.size() - 2] == '=') --decoded;
      size += decoded;
    }
  }
  return size;
}

// Queue attributes settable with CreateQueue / SetQueueAttributes.
const std::set<std::string>& SettableAttributes() {
  static const std::set<std::string> kNames = {"VisibilityTimeout",
                                               "MessageRetentionPeriod",
                                               "ReceiveMessageWaitTimeSeconds",
                                               "DelaySeconds",
                                               "MaximumMessageSize",
                                               "RedrivePolicy",
                                               "Policy",
                                               "RedriveAllowPolicy"};
  return kNames;
}

// Queue attributes SQS knows that the local queue does not implement.
const std::set<std::string>& UnsupportedAttributes() {
  static const std::set<std::string> kNames = {
      "FifoQueue",           "ContentBasedDeduplication",
      "KmsMasterKeyId",      "KmsDataKeyReusePeriodSeconds",
      "DeduplicationScope",  "FifoThroughputLimit",
      "SqsManagedSseEnabled"};
  return kNames;
}

}  // namespace

std::string SqsError::code() const {
  if (!query_code.empty()) return query_code;
  size_t hash = type.rfind('#');
  return hash == std::string::npos ? type : type.substr(hash + 1);
}

std::string SqsError::query_error_header() const {
  if (query_code.empty()) return "";
  return query_code + (sender_fault ? ";Sender" : ";Receiver");
}

std::string SqsError::body() const {
  return Json{{"__type", type}, {"message", message}}.dump(
      -1, ' ', false, Json::error_handler_t::replace);
}

SqsError SerializationError(std::string message) {
  return SqsError{400, "com.amazon.coral.service#SerializationException", "",
                  true, std::move(message)};
}
SqsError UnknownOperationError(std::string message) {
  return SqsError{400, "com.amazon.coral.service#UnknownOperationException",
                  "InvalidAction", true, std::move(message)};
}
SqsError AuthError(int http_status, const std::string& code,
                   std::string message) {
  return SqsError{http_status, "com.amazon.coral.service#" + code, code, true,
                  std::move(message)};
}
SqsError BatchRequestTooLong(size_t bytes) {
  return Err("BatchRequestTooLong",
             "AWS.SimpleQueueService.BatchRequestTooLong",
             "Batch requests cannot be longer than " +
                 std::to_string(local::kMaxMessageBytes) +
                 " bytes. You have sent " + std::to_string(bytes) + " bytes.");
}
SqsError RequestTooLargeError(std::string message) {
  return SqsError{413, "com.amazonaws.sqs#RequestEntityTooLarge",
                  "RequestEntityTooLarge", true, std::move(message)};
}
SqsError InternalError(std::string message) {
  return Err("InternalError", "InternalError", std::move(message), 500);
}

ApiResponse SqsApi::ErrorResponse(const SqsError& error) {
  // Messages quote the client's input (a queue URL, an attribute name),
  // which can be megabytes: keep answers and log lines small.
  constexpr size_t kMaxMessageBytes = 1024;
  SqsError shown = error;
  if (shown.message.size() > kMaxMessageBytes) {
    size_t cut = kMaxMessageBytes;
    // Cut at a character boundary, not inside a UTF-8 sequence.
    while (cut > 0 &&
           (static_cast<unsigned char>(shown.message[cut]) & 0xC0) == 0x80) {
      --cut;
    }
    shown.message.resize(cut);
    shown.message += "... (truncated)";
  }
  return ApiResponse{shown.http_status, shown.body(),
                     shown.query_error_header(), shown.code(), shown.message};
}

SqsApi::SqsApi(local::LocalQueueStore& store, SqsApiOptions options)
    : store_(store),
      options_(std::move(options)),
      sends_([this](const std::string& queue,
                    const std::vector<const std::vector<OutgoingMessage>*>&
                        requests) { return FlushSends(queue, requests); }),
      deletes_(
          [this](const std::string& queue,
                 const std::vector<const std::vector<std::string>*>& requests) {
            return FlushDeletes(queue, requests);
          }) {}

std::vector<Result<std::vector<std::string>>> SqsApi::FlushSends(
    const std::string& queue,
    const std::vector<const std::vector<OutgoingMessage>*>& requests) {
  std::vector<OutgoingMessage> all;
  for (const auto* r : requests) all.insert(all.end(), r->begin(), r->end());
  auto sent = store_.SendBatch(queue, all);
  std::vector<Result<std::vector<std::string>>> out;
  if (sent.ok()) {
    size_t next = 0;
    for (const auto* r : requests) {
      std::vector<std::string> ids(
          sent->begin() + static_cast<long>(next),
          sent->begin() + static_cast<long>(next + r->size()));
      next += r->size();
      out.emplace_back(std::move(ids));
    }
  } else if (sent.status().code() == StatusCode::kInvalidArgument &&
             requests.size() > 1) {
    // One request's message was rejected (the batch is all-or-none): send
    // each request on its own so the others are not failed for it.
    for (const auto* r : requests) out.push_back(store_.SendBatch(queue, *r));
  } else {
    for (size_t i = 0; i < requests.size(); ++i)
      out.emplace_back(sent.status());
  }
  return out;
}

std::vector<std::vector<BatchEntryResult>> SqsApi::FlushDeletes(
    const std::string& queue,
    const std::vector<const std::vector<std::string>*>& requests) {
  std::vector<std::string> all;
  for (const auto* r : requests) all.insert(all.end(), r->begin(), r->end());
  std::vector<BatchEntryResult> results = store_.Delete(queue, all);
  std::vector<std::vector<BatchEntryResult>> out;
  size_t next = 0;
  for (const auto* r : requests) {
    out.emplace_back(results.begin() + static_cast<long>(next),
                     results.begin() + static_cast<long>(next + r->size()));
    next += r->size();
  }
  return out;
}

// One request: its input, the Host it came to, and the operations.
class SqsApi::Call {
 public:
  Call(SqsApi& api, const Json& in, std::string_view host,
       std::string_view region, std::stop_token stop)
      : api_(api),
        in_(in),
        host_(host),
        region_(region.empty() ? api.options_.region : std::string(region)),
        stop_(std::move(stop)) {}

  Expected<Json> Run(std::string_view op) {
    if (op == "SendMessage") return SendMessage();
    if (op == "SendMessageBatch") return SendMessageBatch();
    if (op == "ReceiveMessage") return ReceiveMessage();
    if (op == "DeleteMessage") return DeleteMessage();
    if (op == "DeleteMessageBatch") return DeleteMessageBatch();
    if (op == "ChangeMessageVisibility") return ChangeMessageVisibility();
    if (op == "ChangeMessageVisibilityBatch")
      return ChangeMessageVisibilityBatch();
    if (op == "CreateQueue") return CreateQueue();
    if (op == "GetQueueUrl") return GetQueueUrl();
    if (op == "ListQueues") return ListQueues();
    if (op == "DeleteQueue") return DeleteQueue();
    if (op == "GetQueueAttributes") return GetQueueAttributes();
    if (op == "SetQueueAttributes") return SetQueueAttributes();
    if (op == "PurgeQueue") return PurgeQueue();
    if (op == "ListDeadLetterSourceQueues") return ListDeadLetterSourceQueues();
    if (op == "StartMessageMoveTask") return StartMessageMoveTask();
    if (op == "ListMessageMoveTasks") return ListMessageMoveTasks();
    if (op == "TagQueue") return TagQueue();
    if (op == "UntagQueue") return UntagQueue();
    if (op == "ListQueueTags") return ListQueueTags();
    if (op == "AddPermission" || op == "RemovePermission") {
      return UnsupportedOperation(
          std::string(op) + " is not supported by the local SQS endpoint");
    }
    if (op == "CancelMessageMoveTask") {
      return UnsupportedOperation(
          "CancelMessageMoveTask: the local SQS endpoint completes message "
          "move tasks within StartMessageMoveTask, so none is ever running");
    }
    return UnknownOperationError("Unknown operation AmazonSQS." +
                                 std::string(op));
  }

 private:
  // ---- input helpers ----
  Expected<std::string> RequiredString(const char* name) {
    auto it = in_.find(name);
    if (it == in_.end() || it->is_null()) return MissingParameter(name);
    if (!it->is_string()) {
      return SerializationError(std::string("Parameter ") + name +
                                " must be a string");
    }
    if (it->get_ref<const std::string&>().empty())
      return MissingParameter(name);
    return it->get<std::string>();
  }

  static Expected<std::optional<int>> OptionalInt(const Json& in,
                                                  const char* name) {
    auto it = in.find(name);
    if (it == in.end() || it->is_null()) return std::optional<int>();
    if (!it->is_number_integer()) {
      return SerializationError(std::string("Parameter ") + name +
                                " must be an integer");
    }
    auto v = it->get<long long>();
    if (v < INT32_MIN || v > INT32_MAX) {
      return InvalidParameterValue("Value " + std::to_string(v) +
                                   " for parameter " + name + " is invalid.");
    }
    return std::optional<int>(static_cast<int>(v));
  }

  static Expected<std::vector<std::string>> StringList(const Json& in,
                                                       const char* name) {
    std::vector<std::string> out;
    auto it = in.find(name);
    if (it == in.end() || it->is_null()) return out;
    if (!it->is_array()) {
      return SerializationError(std::string("Parameter ") + name +
                                " must be a list of strings");
    }
    for (const auto& v : *it) {
      if (!v.is_string()) {
        return SerializationError(std::string("Parameter ") + name +
                                  " must be a list of strings");
      }
      out.push_back(v.get<std::string>());
    }
    return out;
  }

  // The store's name for the queue `name` of the request's region.
  std::string StoredName(const std::string& name) const {
    return region_ == api_.options_.region
               ? name
               : local::RegionalQueueName(region_, name);
  }
  // The queue name in a store's name.
  static std::string QueueNameOf(const std::string& stored) {
    size_t separator = stored.rfind(local::kRegionSeparator);
    return separator == std::string::npos ? stored
                                          : stored.substr(separator + 1);
  }
  // Whether a store's name is a queue of the request's region.
  bool InRegion(const std::string& stored) const {
    return StoredName(QueueNameOf(stored)) == stored;
  }

  std::string QueueUrl(const std::string& stored) const {
    return "http://" + host_ + "/" + api_.options_.account_id + "/" +
           QueueNameOf(stored);
  }
  std::string QueueArn(const std::string& stored) const {
    return "arn:aws:sqs:" + region_ + ":" + api_.options_.account_id + ":" +
           QueueNameOf(stored);
  }

  // The store's name of the queue a QueueUrl names: http(s)://HOST/ACCOUNT/NAME
  // or /ACCOUNT/NAME. A URL whose path is not /ACCOUNT/NAME (none at all:
  // "http://host") names no queue: QueueDoesNotExist, which is what
  // clients catch. Other text is not an address: InvalidAddress.
  Expected<std::string> QueueNameFromUrl() {
    SQS_ASSIGN_OR_RETURN(std::string url, RequiredString("QueueUrl"));
    std::string_view path = url;
    if (size_t scheme = path.find("://"); scheme != std::string_view::npos) {
      path.remove_prefix(scheme + 3);
      size_t slash = path.find('/');
      path.remove_prefix(slash == std::string_view::npos ? path.size() : slash);
      if (path.empty()) return QueueDoesNotExist();
    } else if (path.empty() || path.front() != '/') {
      return InvalidAddress(url);
    }
    path.remove_prefix(1);
    if (!path.empty() && path.back() == '/') path.remove_suffix(1);
    size_t slash = path.find('/');
    if (slash == std::string_view::npos ||
        path.find('/', slash + 1) != std::string_view::npos ||
        path.substr(0, slash) != api_.options_.account_id) {
      return QueueDoesNotExist();
    }
    std::string name(path.substr(slash + 1));
    if (!local::ValidateQueueName(name).ok()) return QueueDoesNotExist();
    return StoredName(name);
  }

  // The store's name of the queue arn:aws:sqs:REGION:ACCOUNT:NAME names in
  // the request's region and the account, or empty.
  std::string QueueNameFromArn(const std::string& arn) const {
    const std::string prefix =
        "arn:aws:sqs:" + region_ + ":" + api_.options_.account_id + ":";
    if (arn.compare(0, prefix.size(), prefix) != 0) return "";
    std::string name = arn.substr(prefix.size());
    return local::ValidateQueueName(name).ok() ? StoredName(name) : "";
  }

  Expected<local::QueueInfo> LoadQueue(const std::string& name) {
    auto info = api_.store_.GetQueue(name);
    if (!info.ok()) return FromStatus(info.status());
    return std::move(info).value();
  }

  // ---- queue attributes ----
  Expected<std::optional<local::RedrivePolicy>> ParseRedrivePolicy(
      const std::string& text) {
    if (text.empty()) return std::optional<local::RedrivePolicy>();
    auto invalid = [&](const std::string& reason) {
      return InvalidParameterValue("Value " + text +
                                   " for parameter RedrivePolicy is invalid. "
                                   "Reason: " +
                                   reason);
    };
    auto parsed = ParseJson(text);
    if (!parsed.ok() || !parsed->is_object())
      return invalid("Redrive policy is not a valid JSON map.");
    const Json& policy = *parsed;
    auto arn = policy.find("deadLetterTargetArn");
    auto count = policy.find("maxReceiveCount");
    if (arn == policy.end() || !arn->is_string()) {
      return invalid(
          "Redrive policy does not contain mandatory attribute: "
          "deadLetterTargetArn.");
    }
    if (count == policy.end()) {
      return invalid(
          "Redrive policy does not contain mandatory attribute: "
          "maxReceiveCount.");
    }
    local::RedrivePolicy out;
    if (count->is_number_integer()) {
      const auto n = count->get<long long>();
      out.max_receive_count = n < 0 || n > INT32_MAX ? -1 : static_cast<int>(n);
    } else if (!count->is_string() ||
               !ParseNonNegativeInt(count->get<std::string>(),
                                    &out.max_receive_count)) {
      return invalid("Invalid value for maxReceiveCount.");
    }
    if (out.max_receive_count < 1 || out.max_receive_count > 1000) {
      return invalid("Invalid value for maxReceiveCount: " +
                     std::to_string(out.max_receive_count) +
                     ", valid values are from 1 to 1000 both inclusive.");
    }
    out.dead_letter_queue = QueueNameFromArn(arn->get<std::string>());
    if (out.dead_letter_queue.empty() ||
        !api_.store_.GetQueue(out.dead_letter_queue).ok()) {
      return invalid("Dead letter target does not exist.");
    }
    return std::optional<local::RedrivePolicy>(out);
  }

  // `config` with the request's Attributes applied.
  Expected<local::QueueConfig> ApplyAttributes(local::QueueConfig config) {
    auto it = in_.find("Attributes");
    if (it == in_.end() || it->is_null()) return config;
    if (!it->is_object()) {
      return SerializationError("Attributes must be a map of strings");
    }
    for (const auto& [name, value] : it->items()) {
      if (!value.is_string()) {
        return SerializationError("Attribute " + name + " must be a string");
      }
      const std::string& text = value.get_ref<const std::string&>();
      if (UnsupportedAttributes().count(name)) {
        return InvalidAttributeName("Attribute " + name +
                                    " is not supported by the local SQS "
                                    "endpoint.");
      }
      if (!SettableAttributes().count(name)) {
        return InvalidAttributeName("Unknown Attribute " + name + ".");
      }
      if (name == "RedrivePolicy") {
        SQS_ASSIGN_OR_RETURN(config.redrive, ParseRedrivePolicy(text));
        continue;
      }
      // Kept verbatim for the tools that set them; not enforced.
      if (name == "Policy") {
        config.policy = text;
        continue;
      }
      if (name == "RedriveAllowPolicy") {
        config.redrive_allow_policy = text;
        continue;
      }
      int n = 0;
      if (!ParseNonNegativeInt(text, &n)) {
        return InvalidAttributeValue("Invalid value for the parameter " + name +
                                     ".");
      }
      if (name == "VisibilityTimeout") config.visibility_timeout = n;
      if (name == "MessageRetentionPeriod") config.retention_seconds = n;
      if (name == "ReceiveMessageWaitTimeSeconds")
        config.receive_wait_seconds = n;
      if (name == "DelaySeconds") config.delay_seconds = n;
      if (name == "MaximumMessageSize") config.max_message_bytes = n;
    }
    if (Status s = local::ValidateQueueConfig(config); !s.ok()) {
      return InvalidAttributeValue("Invalid value for a queue attribute: " +
                                   s.message());
    }
    return config;
  }

  Expected<Json> CreateQueue() {
    auto given = in_.find("QueueName");
    if (given == in_.end() || given->is_null())
      return MissingParameter("QueueName");
    if (!given->is_string())
      return SerializationError("Parameter QueueName must be a string");
    if (!local::ValidateQueueName(given->get<std::string>()).ok()) {
      return InvalidParameterValue(
          "Can only include alphanumeric characters, hyphens, or underscores. "
          "1 to 80 in length");
    }
    const std::string name = StoredName(given->get<std::string>());
    SQS_ASSIGN_OR_RETURN(local::QueueTags tags, TagMap(in_, "tags"));
    if (auto invalid = InvalidTags(tags, name)) return *invalid;
    auto existing = api_.store_.GetQueue(name);
    if (existing.ok()) {
      // SQS compares only the attributes given with the existing ones.
      SQS_ASSIGN_OR_RETURN(local::QueueConfig wanted,
                           ApplyAttributes(existing->config));
      if (!(wanted == existing->config)) {
        return Err("QueueNameExists", "QueueAlreadyExists",
                   "A queue already exists with the same name and a "
                   "different value for an attribute.");
      }
      return Json{{"QueueUrl", QueueUrl(name)}};
    }
    if (existing.status().code() != StatusCode::kNotFound) {
      return FromStatus(existing.status());
    }
    SQS_ASSIGN_OR_RETURN(local::QueueConfig config,
                         ApplyAttributes(local::QueueConfig{}));
    if (Status s = api_.store_.CreateQueue(name, config, tags); !s.ok()) {
      return FromStatus(s);
    }
    return Json{{"QueueUrl", QueueUrl(name)}};
  }

  // ---- tags ----
  // A map of strings in the request, e.g. CreateQueue's "tags".
  static Expected<local::QueueTags> TagMap(const Json& in, const char* name) {
    local::QueueTags out;
    auto it = in.find(name);
    if (it == in.end() || it->is_null()) return out;
    if (!it->is_object()) {
      return SerializationError(std::string("Parameter ") + name +
                                " must be a map of strings");
    }
    for (const auto& [key, value] : it->items()) {
      if (!value.is_string()) {
        return SerializationError(std::string("Parameter ") + name +
                                  " must be a map of strings");
      }
      out[key] = value.get<std::string>();
    }
    return out;
  }

  static SqsError BadTagKeys() {
    return InvalidParameterValue(
        "Tag keys must be between 1 and 128 characters in length.");
  }

  // Why `tags` are not valid tags for the queue `stored` to have, as SQS
  // checks them (keys 1-128 characters, values up to 256, at most 50), or
  // nothing.
  static std::optional<SqsError> InvalidTags(const local::QueueTags& tags,
                                             const std::string& stored) {
    for (const auto& [key, value] : tags) {
      if (key.empty() || key.size() > 128) return BadTagKeys();
      if (value.size() > 256) {
        return InvalidParameterValue(
            "Tag values must be between 0 and 256 characters in length.");
      }
    }
    if (tags.size() > 50) {
      return InvalidParameterValue("Too many tags added for queue " +
                                   QueueNameOf(stored) + ".");
    }
    return std::nullopt;
  }

  Expected<Json> TagQueue() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(local::QueueTags tags, TagMap(in_, "Tags"));
    if (tags.empty()) return MissingParameter("Tags");
    auto current = api_.store_.GetQueueTags(name);
    if (!current.ok()) return FromStatus(current.status());
    local::QueueTags merged = std::move(current).value();
    for (const auto& [key, value] : tags) merged[key] = value;
    if (auto invalid = InvalidTags(merged, name)) return *invalid;
    if (Status s = api_.store_.TagQueue(name, tags); !s.ok())
      return FromStatus(s);
    return Json::object();
  }

  Expected<Json> UntagQueue() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(std::vector<std::string> keys,
                         StringList(in_, "TagKeys"));
    if (keys.empty()) return BadTagKeys();
    for (const auto& key : keys) {
      if (key.empty() || key.size() > 128) return BadTagKeys();
    }
    if (Status s = api_.store_.UntagQueue(name, keys); !s.ok())
      return FromStatus(s);
    return Json::object();
  }

  Expected<Json> ListQueueTags() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    auto tags = api_.store_.GetQueueTags(name);
    if (!tags.ok()) return FromStatus(tags.status());
    if (tags->empty()) return Json::object();
    return Json{{"Tags", *tags}};
  }

  Expected<Json> GetQueueUrl() {
    SQS_ASSIGN_OR_RETURN(std::string name, RequiredString("QueueName"));
    auto owner = in_.find("QueueOwnerAWSAccountId");
    if (owner != in_.end() && owner->is_string() &&
        owner->get<std::string>() != api_.options_.account_id) {
      return QueueDoesNotExist();
    }
    if (!local::ValidateQueueName(name).ok()) return QueueDoesNotExist();
    SQS_ASSIGN_OR_RETURN(local::QueueInfo info, LoadQueue(StoredName(name)));
    return Json{{"QueueUrl", QueueUrl(info.name)}};
  }

  // Pages `names` with MaxResults / NextToken (the last name returned).
  Expected<Json> PageOfUrls(const std::vector<std::string>& names,
                            const char* key) {
    SQS_ASSIGN_OR_RETURN(std::optional<int> max,
                         OptionalInt(in_, "MaxResults"));
    if (max && (*max < 1 || *max > 1000)) {
      return InvalidParameterValue("Value " + std::to_string(*max) +
                                   " for parameter MaxResults is invalid. "
                                   "Reason: MaxResults must be an integer "
                                   "between 1 and 1000.");
    }
    std::string after;
    if (auto tok = in_.find("NextToken");
        tok != in_.end() && tok->is_string()) {
      after = tok->get<std::string>();
    }
    Json urls = Json::array();
    Json out = Json::object();
    for (const auto& name : names) {
      if (!after.empty() && name <= after) continue;
      if (max && static_cast<int>(urls.size()) == *max) {
        out["NextToken"] = after;  // the last name returned
        break;
      }
      urls.push_back(QueueUrl(name));
      after = name;
    }
    if (!urls.empty() || std::string_view(key) == "queueUrls") out[key] = urls;
    return out;
  }

  Expected<Json> ListQueues() {
    std::string prefix;
    if (auto p = in_.find("QueueNamePrefix");
        p != in_.end() && p->is_string()) {
      prefix = p->get<std::string>();
    }
    auto names = api_.store_.ListQueues(StoredName(prefix));
    if (!names.ok()) return FromStatus(names.status());
    std::vector<std::string> in_region;
    for (const auto& stored : *names) {
      if (InRegion(stored)) in_region.push_back(stored);
    }
    return PageOfUrls(in_region, "QueueUrls");
  }

  Expected<Json> DeleteQueue() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    if (Status s = api_.store_.DeleteQueue(name); !s.ok()) return FromStatus(s);
    return Json::object();
  }

  Expected<Json> GetQueueAttributes() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(std::vector<std::string> wanted,
                         StringList(in_, "AttributeNames"));
    static const std::set<std::string> kKnown = {
        "All",
        "VisibilityTimeout",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "CreatedTimestamp",
        "LastModifiedTimestamp",
        "QueueArn",
        "ApproximateNumberOfMessagesDelayed",
        "DelaySeconds",
        "ReceiveMessageWaitTimeSeconds",
        "RedrivePolicy",
        "Policy",
        "RedriveAllowPolicy",
        "SqsManagedSseEnabled"};
    for (const auto& w : wanted) {
      if (!kKnown.count(w) && !UnsupportedAttributes().count(w)) {
        return InvalidAttributeName("Unknown Attribute " + w + ".");
      }
    }
    SQS_ASSIGN_OR_RETURN(local::QueueInfo info, LoadQueue(name));
    auto depth = api_.store_.Depth(name);
    if (!depth.ok()) return FromStatus(depth.status());
    const local::QueueConfig& c = info.config;
    Json all = {
        {"QueueArn", QueueArn(name)},
        {"ApproximateNumberOfMessages", std::to_string(depth->visible)},
        {"ApproximateNumberOfMessagesNotVisible",
         std::to_string(depth->in_flight)},
        {"ApproximateNumberOfMessagesDelayed", std::to_string(depth->delayed)},
        {"CreatedTimestamp", std::to_string(info.created_at / 1000)},
        {"LastModifiedTimestamp", std::to_string(info.modified_at / 1000)},
        {"VisibilityTimeout", std::to_string(c.visibility_timeout)},
        {"MaximumMessageSize", std::to_string(c.max_message_bytes)},
        {"MessageRetentionPeriod", std::to_string(c.retention_seconds)},
        {"DelaySeconds", std::to_string(c.delay_seconds)},
        {"ReceiveMessageWaitTimeSeconds",
         std::to_string(c.receive_wait_seconds)},
        {"SqsManagedSseEnabled", "false"},
    };
    if (c.redrive) {
      all["RedrivePolicy"] =
          Json{{"deadLetterTargetArn", QueueArn(c.redrive->dead_letter_queue)},
               {"maxReceiveCount", c.redrive->max_receive_count}}
              .dump();
    }
    if (!c.policy.empty()) all["Policy"] = c.policy;
    if (!c.redrive_allow_policy.empty())
      all["RedriveAllowPolicy"] = c.redrive_allow_policy;
    const bool want_all =
        std::find(wanted.begin(), wanted.end(), "All") != wanted.end();
    Json out = Json::object();
    for (const auto& [key, value] : all.items()) {
      if (want_all ||
          std::find(wanted.begin(), wanted.end(), key) != wanted.end()) {
        out[key] = value;
      }
    }
    if (out.empty()) return Json::object();
    return Json{{"Attributes", out}};
  }

  Expected<Json> SetQueueAttributes() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    if (!in_.contains("Attributes")) return MissingParameter("Attributes");
    SQS_ASSIGN_OR_RETURN(local::QueueInfo info, LoadQueue(name));
    SQS_ASSIGN_OR_RETURN(local::QueueConfig config,
                         ApplyAttributes(info.config));
    if (Status s = api_.store_.SetQueueConfig(name, config); !s.ok()) {
      return FromStatus(s);
    }
    return Json::object();
  }

  Expected<Json> PurgeQueue() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    if (Status s = api_.store_.Purge(name); !s.ok()) return FromStatus(s);
    return Json::object();
  }

  // ---- sending ----
  static Expected<MessageAttributes> ParseMessageAttributes(const Json& entry) {
    MessageAttributes out;
    auto it = entry.find("MessageAttributes");
    if (it == entry.end() || it->is_null()) return out;
    if (!it->is_object()) {
      return SerializationError("MessageAttributes must be a map");
    }
    if (it->size() > kMaxMessageAttributes) {
      return InvalidParameterValue("Number of message attributes [" +
                                   std::to_string(it->size()) +
                                   "] exceeds the allowed maximum [10].");
    }
    for (const auto& [name, value] : it->items()) {
      // SQS's sentences, which start "The message attribute 'NAME' ...".
      const std::string who = "The message attribute '" + name + "'";
      const bool bad_characters =
          name.empty() || name.size() > 256 ||
          !std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' ||
                   c == '-' || c == '.';
          });
      if (bad_characters) {
        return InvalidParameterValue(
            "The message attribute name '" + name +
            "' is invalid. Attribute name can contain A-Z, a-z, 0-9, "
            "underscore (_), hyphen (-), and period (.) characters.");
      }
      if (name.front() == '.' || name.back() == '.' ||
          name.find("..") != std::string::npos) {
        return InvalidParameterValue(
            "The message attribute name '" + name +
            "' is invalid. Attribute name can not start or end with a period "
            "(.), or have multiple periods in succession (..).");
      }
      if (name.rfind("AWS.", 0) == 0 || name.rfind("Amazon.", 0) == 0) {
        return InvalidParameterValue(
            "The message attribute name '" + name +
            "' is reserved for use by AWS: names can not start with AWS. or "
            "Amazon. (case-sensitive).");
      }
      if (!value.is_object()) {
        return SerializationError(who + " must be a MessageAttributeValue");
      }
      auto type = value.find("DataType");
      if (type == value.end() || !type->is_string() ||
          type->get_ref<const std::string&>().empty()) {
        return InvalidParameterValue(
            who + " must contain non-empty message attribute type.");
      }
      MessageAttribute attr;
      attr.data_type = type->get<std::string>();
      std::string base = attr.data_type.substr(0, attr.data_type.find('.'));
      if ((base != "String" && base != "Number" && base != "Binary") ||
          attr.data_type.size() > 256) {
        return InvalidParameterValue(
            who +
            " has an invalid message attribute type, the set of "
            "supported type prefixes is Binary, Number, and String.");
      }
      // Reserved by SQS: accepted when absent, null or empty. (This read
      // `value["BinaryListValues"]` through const operator[], undefined
      // behaviour when only StringListValues was given.)
      for (const char* list : {"StringListValues", "BinaryListValues"}) {
        auto it_list = value.find(list);
        if (it_list == value.end() || it_list->is_null()) continue;
        if (!it_list->is_array()) {
          return SerializationError(who + ": " + list + " must be a list");
        }
        if (!it_list->empty()) {
          return InvalidParameterValue(
              "Message attribute list values in SendMessage operation are not "
              "supported.");
        }
      }
      if (base == "Binary") {
        auto bin = value.find("BinaryValue");
        std::optional<std::string> bytes;
        if (bin != value.end() && bin->is_string())
          bytes = Base64Decode(bin->get<std::string>());
        if (!bytes || bytes->empty()) {
          return InvalidParameterValue(
              who +
              " must contain non-empty message attribute value for message "
              "attribute type '" +
              attr.data_type + "'.");
        }
        attr.value = std::move(*bytes);
      } else {
        auto str = value.find("StringValue");
        if (str == value.end() || !str->is_string() ||
            str->get_ref<const std::string&>().empty()) {
          return InvalidParameterValue(
              who +
              " must contain non-empty message attribute value for message "
              "attribute type '" +
              attr.data_type + "'.");
        }
        attr.value = str->get<std::string>();
        if (auto bad = InvalidCharacter(attr.value)) {
          return InvalidParameterValue(who + " has an invalid character " +
                                       *bad + " in its value.");
        }
        if (base == "Number" && !IsNumber(attr.value)) {
          return InvalidParameterValue(
              "Can't cast the value of message (user) attribute '" + name +
              "' to a number.");
        }
      }
      out[name] = std::move(attr);
    }
    return out;
  }

  // The AWSTraceHeader in MessageSystemAttributes, the one system attribute
  // a sender may set, or empty. Its size does not count toward the
  // message's.
  static Expected<std::string> ParseTraceHeader(const Json& entry) {
    auto it = entry.find("MessageSystemAttributes");
    if (it == entry.end() || it->is_null()) return std::string();
    if (!it->is_object()) {
      return SerializationError("MessageSystemAttributes must be a map");
    }
    std::string header;
    for (const auto& [name, value] : it->items()) {
      if (name != "AWSTraceHeader") {
        return InvalidParameterValue(
            "Message system attribute name '" + name +
            "' is invalid. The only message system attribute a sender can "
            "set is AWSTraceHeader.");
      }
      if (!value.is_object()) {
        return SerializationError(
            "Message system attribute AWSTraceHeader must be a "
            "MessageSystemAttributeValue");
      }
      auto type = value.find("DataType");
      auto text = value.find("StringValue");
      if (type == value.end() || !type->is_string() ||
          type->get_ref<const std::string&>() != "String") {
        return InvalidParameterValue(
            "The message system attribute 'AWSTraceHeader' must have the "
            "data type String.");
      }
      if (text == value.end() || !text->is_string() ||
          text->get_ref<const std::string&>().empty()) {
        return InvalidParameterValue(
            "The message system attribute 'AWSTraceHeader' must contain "
            "non-empty message attribute value for message attribute type "
            "'String'.");
      }
      header = text->get<std::string>();
      if (auto bad = InvalidCharacter(header)) {
        return InvalidParameterValue(
            "The message system attribute 'AWSTraceHeader' has an invalid "
            "character " +
            *bad + " in its value.");
      }
    }
    return header;
  }

  // Validates one message to send, as SQS does before enqueuing it.
  static Expected<OutgoingMessage> ParseOutgoing(
      const Json& entry, const local::QueueConfig& config) {
    OutgoingMessage m;
    auto body = entry.find("MessageBody");
    if (body == entry.end() || body->is_null())
      return MissingParameter("MessageBody");
    if (!body->is_string())
      return SerializationError("MessageBody must be a string");
    m.body = body->get<std::string>();
    if (m.body.empty()) return MissingParameter("MessageBody");
    if (auto bad = InvalidCharacter(m.body)) {
      return Err("InvalidMessageContents", "InvalidMessageContents",
                 "Invalid binary character '" + *bad +
                     "' was found in the message body, the set of allowed "
                     "characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 "
                     "to #xFFFD | #x10000 to #x10FFFF");
    }
    SQS_ASSIGN_OR_RETURN(std::optional<int> delay,
                         OptionalInt(entry, "DelaySeconds"));
    if (delay && (*delay < 0 || *delay > 900)) {
      return InvalidParameterValue(
          "Value " + std::to_string(*delay) +
          " for parameter DelaySeconds is invalid. "
          "Reason: DelaySeconds must be >= 0 and <= 900.");
    }
    // A given delay, 0 included, overrides the queue's.
    m.delay_seconds = delay;
    SQS_ASSIGN_OR_RETURN(m.attributes, ParseMessageAttributes(entry));
    SQS_ASSIGN_OR_RETURN(m.aws_trace_header, ParseTraceHeader(entry));
    if (MessageSize(m) > static_cast<size_t>(config.max_message_bytes)) {
      return InvalidParameterValue(
          "One or more parameters are invalid. Reason: Message must be shorter "
          "than " +
          std::to_string(config.max_message_bytes) + " bytes.");
    }
    return m;
  }

  static Json SendResult(const OutgoingMessage& m, const std::string& id) {
    Json out = {{"MessageId", id}, {"MD5OfMessageBody", Md5Hex(m.body)}};
    if (!m.attributes.empty()) {
      out["MD5OfMessageAttributes"] = MessageAttributesMd5(m.attributes);
    }
    if (!m.aws_trace_header.empty()) {
      out["MD5OfMessageSystemAttributes"] = MessageAttributesMd5(
          {{"AWSTraceHeader", {"String", m.aws_trace_header}}});
    }
    return out;
  }

  Expected<Json> SendMessage() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(local::QueueInfo info, LoadQueue(name));
    SQS_ASSIGN_OR_RETURN(OutgoingMessage m, ParseOutgoing(in_, info.config));
    auto ids = api_.sends_.Run(name, {m});
    if (!ids.ok()) return FromStatus(ids.status());
    return SendResult(m, ids->front());
  }

  // Checks a batch's Entries as SQS does before looking at any entry.
  Expected<const Json*> BatchEntries(const char* entry_shape) {
    auto it = in_.find("Entries");
    if (it == in_.end() || it->is_null() || (it->is_array() && it->empty())) {
      return Err("EmptyBatchRequest",
                 "AWS.SimpleQueueService.EmptyBatchRequest",
                 std::string("There should be at least one ") + entry_shape +
                     " in the request.");
    }
    if (!it->is_array()) return SerializationError("Entries must be a list");
    if (it->size() > static_cast<size_t>(local::kMaxBatch)) {
      return Err(
          "TooManyEntriesInBatchRequest",
          "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
          "Maximum number of entries per request are 10. You have sent " +
              std::to_string(it->size()) + ".");
    }
    std::set<std::string> ids;
    for (const auto& entry : *it) {
      if (!entry.is_object())
        return SerializationError("Entries must hold objects");
      auto id = entry.find("Id");
      if (id == entry.end() || !id->is_string()) return MissingParameter("Id");
      const std::string& text = id->get_ref<const std::string&>();
      if (!ValidBatchId(text)) {
        return Err(
            "InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId",
            "A batch entry id can only contain alphanumeric characters, "
            "hyphens and underscores. It can be at most 80 letters long.");
      }
      if (!ids.insert(text).second) {
        return Err("BatchEntryIdsNotDistinct",
                   "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
                   "Id " + text + " repeated.");
      }
    }
    return &*it;
  }

  // The Id of an entry that BatchEntries accepted (so a valid string).
  static std::string EntryId(const Json& entry) {
    auto id = entry.find("Id");
    return id != entry.end() && id->is_string() ? id->get<std::string>() : "";
  }

  static Json Failed(const std::string& id, const SqsError& e) {
    return Json{{"Id", id},
                {"SenderFault", e.sender_fault},
                {"Code", e.code()},
                {"Message", e.message}};
  }

  static Json BatchResult(Json successful, Json failed) {
    return Json{{"Successful", std::move(successful)},
                {"Failed", std::move(failed)}};
  }

  Expected<Json> SendMessageBatch() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(const Json* entries,
                         BatchEntries("SendMessageBatchRequestEntry"));
    // SQS refuses a batch over the limit as a whole, before looking at its
    // entries one by one, also when it is a single entry.
    size_t total = 0;
    for (const auto& entry : *entries) total += RawEntrySize(entry);
    if (total > static_cast<size_t>(local::kMaxMessageBytes)) {
      return BatchRequestTooLong(total);
    }
    SQS_ASSIGN_OR_RETURN(local::QueueInfo info, LoadQueue(name));
    Json failed = Json::array();
    std::vector<OutgoingMessage> messages;
    std::vector<std::string> ids;
    for (const auto& entry : *entries) {
      const std::string id = EntryId(entry);
      auto m = ParseOutgoing(entry, info.config);
      if (!m.ok()) {
        failed.push_back(Failed(id, m.error()));
        continue;
      }
      messages.push_back(std::move(m.value()));
      ids.push_back(id);
    }
    Json successful = Json::array();
    if (!messages.empty()) {
      auto sent = api_.sends_.Run(name, messages);
      if (!sent.ok()) return FromStatus(sent.status());
      for (size_t i = 0; i < messages.size(); ++i) {
        Json r = SendResult(messages[i], (*sent)[i]);
        r["Id"] = ids[i];
        successful.push_back(std::move(r));
      }
    }
    return BatchResult(std::move(successful), std::move(failed));
  }

  // ---- receiving ----
  Expected<Json> ReceiveMessage() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(std::optional<int> max,
                         OptionalInt(in_, "MaxNumberOfMessages"));
    SQS_ASSIGN_OR_RETURN(std::optional<int> wait,
                         OptionalInt(in_, "WaitTimeSeconds"));
    SQS_ASSIGN_OR_RETURN(std::optional<int> vis,
                         OptionalInt(in_, "VisibilityTimeout"));
    if (max && (*max < 1 || *max > local::kMaxBatch)) {
      return InvalidParameterValue("Value " + std::to_string(*max) +
                                   " for parameter MaxNumberOfMessages is "
                                   "invalid. Reason: Must be between 1 and 10, "
                                   "if provided.");
    }
    if (wait && (*wait < 0 || *wait > local::kMaxWaitSeconds)) {
      return InvalidParameterValue(
          "Value " + std::to_string(*wait) +
          " for parameter WaitTimeSeconds is invalid. "
          "Reason: Must be >= 0 and <= 20, if provided.");
    }
    if (vis && (*vis < 0 || *vis > local::kMaxVisibilitySeconds)) {
      return InvalidParameterValue("Value " + std::to_string(*vis) +
                                   " for parameter VisibilityTimeout is "
                                   "invalid. Reason: Must be between 0 and "
                                   "43200, if provided.");
    }
    SQS_ASSIGN_OR_RETURN(std::vector<std::string> system_names,
                         StringList(in_, "AttributeNames"));
    SQS_ASSIGN_OR_RETURN(std::vector<std::string> more_system,
                         StringList(in_, "MessageSystemAttributeNames"));
    system_names.insert(system_names.end(), more_system.begin(),
                        more_system.end());
    SQS_ASSIGN_OR_RETURN(std::vector<std::string> attribute_names,
                         StringList(in_, "MessageAttributeNames"));
    if (!wait) {
      SQS_ASSIGN_OR_RETURN(local::QueueInfo info, LoadQueue(name));
      wait = info.config.receive_wait_seconds;
    }
    // A stop ends the wait early with what is there, often nothing: the
    // empty answer SQS gives at the end of a wait.
    auto got = api_.store_.Receive(name, max.value_or(1), *wait, vis, stop_);
    if (!got.ok()) return FromStatus(got.status());

    auto want_system = [&](const std::string& attr) {
      for (const auto& n : system_names) {
        if (n == "All" || n == attr) return true;
      }
      return false;
    };
    // "All", a name, or "PREFIX.*": the names that start with PREFIX (".*"
    // has the empty prefix: all of them).
    auto want_attribute = [&](const std::string& attr) {
      for (const auto& n : attribute_names) {
        if (n == "All" || n == attr) return true;
        const size_t prefix = n.size() - 2;
        if (n.size() >= 2 && n.compare(prefix, 2, ".*") == 0 &&
            attr.compare(0, prefix, n, 0, prefix) == 0) {
          return true;
        }
      }
      return false;
    };
    Json messages = Json::array();
    for (const Message& m : *got) {
      Json j = {{"MessageId", m.id},
                {"ReceiptHandle", m.receipt_handle},
                {"MD5OfBody", Md5Hex(m.body)},
                {"Body", m.body}};
      Json system = Json::object();
      if (want_system("SenderId"))
        system["SenderId"] = api_.options_.account_id;
      if (want_system("SentTimestamp"))
        system["SentTimestamp"] = std::to_string(m.sent_at);
      if (want_system("ApproximateReceiveCount")) {
        system["ApproximateReceiveCount"] = std::to_string(m.receive_count);
      }
      if (want_system("ApproximateFirstReceiveTimestamp")) {
        system["ApproximateFirstReceiveTimestamp"] =
            std::to_string(m.first_received_at);
      }
      if (!m.aws_trace_header.empty() && want_system("AWSTraceHeader"))
        system["AWSTraceHeader"] = m.aws_trace_header;
      if (!system.empty()) j["Attributes"] = std::move(system);
      MessageAttributes selected;
      for (const auto& [attr_name, attr] : m.attributes) {
        if (want_attribute(attr_name)) selected[attr_name] = attr;
      }
      if (!selected.empty()) {
        Json attrs = Json::object();
        for (const auto& [attr_name, attr] : selected) {
          Json v = {{"DataType", attr.data_type}};
          if (attr.data_type.compare(0, 6, "Binary") == 0) {
            v["BinaryValue"] = Base64Encode(attr.value);
          } else {
            v["StringValue"] = attr.value;
          }
          attrs[attr_name] = std::move(v);
        }
        j["MessageAttributes"] = std::move(attrs);
        j["MD5OfMessageAttributes"] = MessageAttributesMd5(selected);
      }
      messages.push_back(std::move(j));
    }
    if (messages.empty()) return Json::object();
    return Json{{"Messages", std::move(messages)}};
  }

  // ---- deleting and visibility ----
  Expected<Json> DeleteMessage() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(std::string handle, RequiredString("ReceiptHandle"));
    auto results = api_.deletes_.Run(name, {handle});
    const Status& s = results.front().status;
    if (s.ok() || IsStaleHandle(s)) return Json::object();
    if (s.code() == StatusCode::kInvalidArgument)
      return ReceiptHandleIsInvalid(handle);
    return FromStatus(s);
  }

  // A delete with the handle of an earlier delivery: SQS documents that
  // "the request will succeed, but the message might not be deleted", and
  // so it is here (the store keeps the message for its newest handle).
  static bool IsStaleHandle(const Status& delete_status) {
    return delete_status.code() == StatusCode::kFailedPrecondition;
  }

  // A whole-request error if the store failed the batch as a whole (unknown
  // queue, database unavailable): every entry then carries that status.
  static std::optional<SqsError> WholeBatchError(
      const std::vector<BatchEntryResult>& results) {
    for (const auto& r : results) {
      const StatusCode c = r.status.code();
      if (c == StatusCode::kOk || c == StatusCode::kInvalidArgument ||
          c == StatusCode::kFailedPrecondition) {
        return std::nullopt;
      }
    }
    return FromStatus(results.front().status);
  }

  Expected<Json> DeleteMessageBatch() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(const Json* entries,
                         BatchEntries("DeleteMessageBatchRequestEntry"));
    Json failed = Json::array();
    std::vector<std::string> handles, ids;
    for (const auto& entry : *entries) {
      const std::string id = EntryId(entry);
      auto h = entry.find("ReceiptHandle");
      if (h == entry.end() || !h->is_string() ||
          h->get_ref<const std::string&>().empty()) {
        failed.push_back(Failed(id, MissingParameter("ReceiptHandle")));
        continue;
      }
      handles.push_back(h->get<std::string>());
      ids.push_back(id);
    }
    Json successful = Json::array();
    if (!handles.empty()) {
      auto results = api_.deletes_.Run(name, handles);
      if (auto whole = WholeBatchError(results)) return *whole;
      for (size_t i = 0; i < results.size(); ++i) {
        if (results[i].status.ok() || IsStaleHandle(results[i].status)) {
          successful.push_back(Json{{"Id", ids[i]}});
        } else {
          failed.push_back(Failed(ids[i], ReceiptHandleIsInvalid(handles[i])));
        }
      }
    }
    return BatchResult(std::move(successful), std::move(failed));
  }

  static Expected<int> VisibilityArgument(const Json& in) {
    SQS_ASSIGN_OR_RETURN(std::optional<int> vis,
                         OptionalInt(in, "VisibilityTimeout"));
    if (!vis) return MissingParameter("VisibilityTimeout");
    if (*vis < 0 || *vis > local::kMaxVisibilitySeconds) {
      return InvalidParameterValue("Value " + std::to_string(*vis) +
                                   " for parameter VisibilityTimeout is "
                                   "invalid. Reason: Must be between 0 and "
                                   "43200, if provided.");
    }
    return *vis;
  }

  static SqsError VisibilityEntryError(const Status& s,
                                       const std::string& handle) {
    if (s.code() == StatusCode::kInvalidArgument)
      return ReceiptHandleIsInvalid(handle);
    if (s.code() == StatusCode::kFailedPrecondition)
      return MessageNotInflight();
    return FromStatus(s);
  }

  Expected<Json> ChangeMessageVisibility() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(std::string handle, RequiredString("ReceiptHandle"));
    SQS_ASSIGN_OR_RETURN(int vis, VisibilityArgument(in_));
    auto results = api_.store_.ChangeVisibility(name, {handle}, vis);
    const Status& s = results.front().status;
    if (s.ok()) return Json::object();
    return VisibilityEntryError(s, handle);
  }

  Expected<Json> ChangeMessageVisibilityBatch() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(
        const Json* entries,
        BatchEntries("ChangeMessageVisibilityBatchRequestEntry"));
    Json failed = Json::array();
    Json successful = Json::array();
    // The store sets one timeout per call: group the entries by timeout.
    std::map<int, std::vector<std::pair<std::string, std::string>>> by_timeout;
    for (const auto& entry : *entries) {
      const std::string id = EntryId(entry);
      auto h = entry.find("ReceiptHandle");
      if (h == entry.end() || !h->is_string() ||
          h->get_ref<const std::string&>().empty()) {
        failed.push_back(Failed(id, MissingParameter("ReceiptHandle")));
        continue;
      }
      auto vis = VisibilityArgument(entry);
      if (!vis.ok()) {
        failed.push_back(Failed(id, vis.error()));
        continue;
      }
      by_timeout[vis.value()].emplace_back(id, h->get<std::string>());
    }
    for (const auto& [vis, group] : by_timeout) {
      std::vector<std::string> handles;
      for (const auto& [id, handle] : group) handles.push_back(handle);
      auto results = api_.store_.ChangeVisibility(name, handles, vis);
      if (auto whole = WholeBatchError(results)) return *whole;
      for (size_t i = 0; i < results.size(); ++i) {
        if (results[i].status.ok()) {
          successful.push_back(Json{{"Id", group[i].first}});
        } else {
          failed.push_back(
              Failed(group[i].first,
                     VisibilityEntryError(results[i].status, handles[i])));
        }
      }
    }
    return BatchResult(std::move(successful), std::move(failed));
  }

  // ---- dead-letter queues ----
  Expected<Json> ListDeadLetterSourceQueues() {
    SQS_ASSIGN_OR_RETURN(std::string name, QueueNameFromUrl());
    SQS_ASSIGN_OR_RETURN(local::QueueInfo info, LoadQueue(name));
    auto sources = api_.store_.DeadLetterSources(info.name);
    if (!sources.ok()) return FromStatus(sources.status());
    return PageOfUrls(*sources, "queueUrls");
  }

  Expected<std::string> QueueFromArnParameter(const char* parameter) {
    SQS_ASSIGN_OR_RETURN(std::string arn, RequiredString(parameter));
    std::string name = QueueNameFromArn(arn);
    if (name.empty() || !api_.store_.GetQueue(name).ok()) {
      return ResourceNotFound(std::string("The resource that you specified for "
                                          "the ") +
                              parameter + " parameter doesn't exist.");
    }
    return name;
  }

  Expected<Json> StartMessageMoveTask() {
    SQS_ASSIGN_OR_RETURN(std::string source,
                         QueueFromArnParameter("SourceArn"));
    SQS_ASSIGN_OR_RETURN(std::optional<int> rate,
                         OptionalInt(in_, "MaxNumberOfMessagesPerSecond"));
    if (rate && (*rate < 1 || *rate > 500)) {
      return InvalidParameterValue(
          "Value " + std::to_string(*rate) +
          " for parameter MaxNumberOfMessagesPerSecond "
          "is invalid. Reason: Must be between 1 and 500.");
    }
    auto sources = api_.store_.DeadLetterSources(source);
    if (!sources.ok()) return FromStatus(sources.status());
    if (sources->empty()) {
      return InvalidParameterValue(
          "Source queue must be configured as a Dead Letter Queue.");
    }
    std::string destination;
    std::string destination_arn;
    if (auto d = in_.find("DestinationArn"); d != in_.end() && !d->is_null()) {
      SQS_ASSIGN_OR_RETURN(destination,
                           QueueFromArnParameter("DestinationArn"));
      destination_arn = QueueArn(destination);
    } else if (sources->size() == 1) {
      destination = sources->front();
    } else {
      // The store does not record which source queue each dead letter came
      // from, so "back to its source" is only defined for one source.
      return UnsupportedOperation(
          "This dead-letter queue has " + std::to_string(sources->size()) +
          " source queues and the local queue does not record which one each "
          "message came from: give DestinationArn.");
    }
    MoveTask task;
    task.handle = RandomUuid();
    task.source_arn = QueueArn(source);
    task.destination_arn = destination_arn;
    task.started_at = SystemClock::Get().NowMillis();
    auto moved = api_.store_.MoveMessages(source, destination, 0);
    if (moved.ok()) {
      task.status = "COMPLETED";
      task.moved = *moved;
    } else {
      task.status = "FAILED";
      task.failure_reason = moved.status().message();
    }
    {
      std::lock_guard<std::mutex> lock(api_.tasks_mu_);
      auto& list = api_.tasks_[task.source_arn];
      list.push_front(task);
      if (list.size() > 10) list.pop_back();
    }
    if (!moved.ok()) return FromStatus(moved.status());
    return Json{{"TaskHandle", task.handle}};
  }

  Expected<Json> ListMessageMoveTasks() {
    SQS_ASSIGN_OR_RETURN(std::string source,
                         QueueFromArnParameter("SourceArn"));
    SQS_ASSIGN_OR_RETURN(std::optional<int> max,
                         OptionalInt(in_, "MaxResults"));
    if (max && (*max < 1 || *max > 10)) {
      return InvalidParameterValue("Value " + std::to_string(*max) +
                                   " for parameter MaxResults is invalid. "
                                   "Reason: Must be between 1 and 10.");
    }
    Json results = Json::array();
    std::lock_guard<std::mutex> lock(api_.tasks_mu_);
    for (const MoveTask& t : api_.tasks_[QueueArn(source)]) {
      if (static_cast<int>(results.size()) == max.value_or(1)) break;
      Json r = {{"Status", t.status},
                {"SourceArn", t.source_arn},
                {"ApproximateNumberOfMessagesMoved", t.moved},
                {"ApproximateNumberOfMessagesToMove", t.moved},
                {"StartedTimestamp", t.started_at}};
      if (!t.destination_arn.empty()) r["DestinationArn"] = t.destination_arn;
      if (!t.failure_reason.empty()) r["FailureReason"] = t.failure_reason;
      results.push_back(std::move(r));
    }
    return Json{{"Results", std::move(results)}};
  }

  SqsApi& api_;
  const Json& in_;
  const std::string host_;
  const std::string region_;  // the request's: its queues, its ARNs
  const std::stop_token stop_;
};

ApiResponse SqsApi::Handle(std::string_view operation, std::string_view body,
                           std::string_view host, std::string_view region,
                           const std::stop_token& stop) {
  // The depth check comes first: a request nested 100,000 levels deep
  // would otherwise overflow the stack of whatever recurses over it.
  if (Status depth = CheckJsonDepth(body); !depth.ok()) {
    return ErrorResponse(SerializationError(
        "The request body (AmazonSQS." + std::string(operation) +
        ") is rejected: " + depth.message()));
  }
  Json in = body.empty() ? Json::object() : Json::parse(body, nullptr, false);
  if (in.is_discarded() || !in.is_object()) {
    return ErrorResponse(
        SerializationError("The request body is not a JSON object (AmazonSQS." +
                           std::string(operation) + ")"));
  }
  try {
    Call call(*this, in, host, region, stop);
    auto out = call.Run(operation);
    if (!out.ok()) return ErrorResponse(out.error());
    return ApiResponse{
        200, out.value().dump(-1, ' ', false, Json::error_handler_t::replace),
        "", "", ""};
  } catch (const std::exception& e) {
    // A library exception (JSON type error, allocation) is a bug or an
    // input we did not anticipate: answer 500 and keep serving.
    return ErrorResponse(InternalError(std::string("internal error handling ") +
                                       std::string(operation) + ": " +
                                       e.what()));
  }
}

}  // namespace cruncher::sqs
