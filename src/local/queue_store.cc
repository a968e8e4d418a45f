#include "local/queue_store.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "core/random_id.h"
#include "local/data_dir.h"

namespace cruncher::local {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS queues(
  id INTEGER PRIMARY KEY,
  name TEXT UNIQUE NOT NULL,
  created_at INTEGER NOT NULL,
  modified_at INTEGER NOT NULL,
  visibility_timeout INTEGER NOT NULL,
  retention_seconds INTEGER NOT NULL,
  delay_seconds INTEGER NOT NULL,
  receive_wait_seconds INTEGER NOT NULL,
  max_message_bytes INTEGER NOT NULL,
  dlq_name TEXT,
  max_receive_count INTEGER,
  policy TEXT NOT NULL DEFAULT '',
  redrive_allow_policy TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS messages(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  queue_id INTEGER NOT NULL REFERENCES queues(id) ON DELETE CASCADE,
  message_id TEXT NOT NULL,
  body BLOB NOT NULL,
  attributes TEXT NOT NULL,
  sent_at INTEGER NOT NULL,
  visible_at INTEGER NOT NULL,
  receive_count INTEGER NOT NULL DEFAULT 0,
  first_received_at INTEGER NOT NULL DEFAULT 0,
  receipt TEXT,
  aws_trace_header TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages(queue_id, visible_at);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages(queue_id, sent_at);
)sql";

// Columns added to the schema above after databases were first created: a
// database from before gets them when it is opened.
struct AddedColumn {
  const char* table;
  const char* name;
  const char* definition;
};
constexpr AddedColumn kAddedColumns[] = {
    {"queues", "policy", "TEXT NOT NULL DEFAULT ''"},
    {"queues", "redrive_allow_policy", "TEXT NOT NULL DEFAULT ''"},
    {"queues", "tags", "TEXT NOT NULL DEFAULT '{}'"},
    {"messages", "aws_trace_header", "TEXT NOT NULL DEFAULT ''"},
};

// Adds the missing kAddedColumns in one write transaction, so that several
// processes opening an old database at once add each column once.
Result<bool> HasColumn(Database& db, const AddedColumn& column) {
  CRUNCHER_ASSIGN_OR_RETURN(Statement info,
                            db.Prepare("SELECT 1 FROM pragma_table_info(?) "
                                       "WHERE name=?"));
  info.Bind(1, column.table).Bind(2, column.name);
  const bool present = info.Step();
  CRUNCHER_RETURN_IF_ERROR(info.status());
  return present;
}

// Every open (read-only commands too) checks first without a write lock:
// only an old database takes one, and checks again under it.
Status AddMissingColumns(Database& db) {
  bool all_present = true;
  for (const AddedColumn& column : kAddedColumns) {
    CRUNCHER_ASSIGN_OR_RETURN(bool present, HasColumn(db, column));
    all_present = all_present && present;
  }
  if (all_present) return Status::Ok();
  Transaction tx(db);
  CRUNCHER_RETURN_IF_ERROR(tx.Begin());
  for (const AddedColumn& column : kAddedColumns) {
    CRUNCHER_ASSIGN_OR_RETURN(bool present, HasColumn(db, column));
    if (present) continue;
    CRUNCHER_RETURN_IF_ERROR(db.Exec(std::string("ALTER TABLE ") +
                                     column.table + " ADD COLUMN " +
                                     column.name + " " + column.definition));
  }
  return tx.Commit();
}

// Tags are kept as one JSON object per queue.
std::string TagsToJson(const QueueTags& tags) {
  return nlohmann::json(tags).dump(-1, ' ', false,
                                   nlohmann::json::error_handler_t::replace);
}

QueueTags TagsFromJson(const std::string& text) {
  QueueTags out;
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (!parsed.is_object()) return out;
  for (auto& [key, value] : parsed.items()) {
    if (value.is_string()) out[key] = value.get<std::string>();
  }
  return out;
}

// Binary attribute values are arbitrary bytes, which a JSON string cannot
// hold, so they are stored as hex under "x"; text values under "v".
bool IsBinaryType(const std::string& data_type) {
  return data_type.compare(0, 6, "Binary") == 0;
}

nlohmann::json AttributesToJson(const MessageAttributes& attributes) {
  static constexpr char kHex[] = "0123456789abcdef";
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, attr] : attributes) {
    if (IsBinaryType(attr.data_type)) {
      std::string hex;
      hex.reserve(attr.value.size() * 2);
      for (unsigned char c : attr.value) {
        hex.push_back(kHex[c >> 4]);
        hex.push_back(kHex[c & 15]);
      }
      out[name] = {{"t", attr.data_type}, {"x", hex}};
    } else {
      out[name] = {{"t", attr.data_type}, {"v", attr.value}};
    }
  }
  return out;
}

MessageAttributes AttributesFromJson(const std::string& text) {
  MessageAttributes out;
  auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (!parsed.is_object()) return out;
  for (auto& [name, v] : parsed.items()) {
    MessageAttribute attr{v.value("t", "String"), v.value("v", "")};
    if (v.contains("x")) {
      const std::string hex = v.value("x", "");
      attr.value.clear();
      auto nibble = [](char c) {
        return c >= 'a' ? c - 'a' + 10 : c >= 'A' ? c - 'A' + 10 : c - '0';
      };
      for (size_t i = 0; i + 1 < hex.size(); i += 2) {
        attr.value.push_back(
            static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1])));
      }
    }
    out[name] = std::move(attr);
  }
  return out;
}

// The message columns, in the order MessageFromRow reads them after `seq`.
constexpr const char* kMessageColumns =
    "seq, message_id, body, attributes, sent_at, receive_count, "
    "first_received_at, aws_trace_header";

Message MessageFromRow(const Statement& row) {
  Message m;
  m.id = row.Text(1);
  m.body = row.Text(2);
  m.attributes = AttributesFromJson(row.Text(3));
  m.sent_at = row.Int(4);
  m.receive_count = static_cast<int>(row.Int(5));
  m.first_received_at = row.Int(6);
  m.aws_trace_header = row.Text(7);
  return m;
}

// Receipt handles are "<seq>.<token>"; the token changes on every delivery.
bool ParseHandle(const std::string& handle, int64_t* seq, std::string* token) {
  size_t dot = handle.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == handle.size())
    return false;
  try {
    size_t used = 0;
    *seq = std::stoll(handle.substr(0, dot), &used);
    if (used != dot) return false;
  } catch (const std::exception&) {
    return false;
  }
  *token = handle.substr(dot + 1);
  return true;
}

}  // namespace

Status ValidateQueueName(const std::string& name) {
  if (name.empty() || name.size() > 80) {
    return InvalidArgument("queue name must be 1 to 80 characters: \"" + name +
                           "\"");
  }
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return InvalidArgument(
          "queue name may contain only letters, digits, - and _ (FIFO queues "
          "are not supported locally): \"" +
          name + "\"");
    }
  }
  return Status::Ok();
}

std::string RegionalQueueName(const std::string& region,
                              const std::string& name) {
  return region + kRegionSeparator + name;
}

Status ValidateStoredQueueName(const std::string& name) {
  const size_t separator = name.find(kRegionSeparator);
  if (separator == std::string::npos) return ValidateQueueName(name);
  const std::string region = name.substr(0, separator);
  if (region.empty() || region.size() > 32 ||
      !std::all_of(region.begin(), region.end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) ||
               std::isdigit(static_cast<unsigned char>(c)) || c == '-';
      })) {
    return InvalidArgument("region \"" + region +
                           "\" must be 1 to 32 of a-z, 0-9 and -");
  }
  return ValidateQueueName(name.substr(separator + 1));
}

Status ValidateQueueConfig(const QueueConfig& c) {
  if (c.visibility_timeout < 0 || c.visibility_timeout > kMaxVisibilitySeconds)
    return InvalidArgument("VisibilityTimeout must be 0 to 43200 seconds");
  if (c.retention_seconds < 60 || c.retention_seconds > 1'209'600)
    return InvalidArgument(
        "MessageRetentionPeriod must be 60 to 1209600 seconds");
  if (c.delay_seconds < 0 || c.delay_seconds > 900)
    return InvalidArgument("DelaySeconds must be 0 to 900");
  if (c.receive_wait_seconds < 0 || c.receive_wait_seconds > kMaxWaitSeconds)
    return InvalidArgument("ReceiveMessageWaitTimeSeconds must be 0 to 20");
  if (c.max_message_bytes < 1024 || c.max_message_bytes > kMaxMessageBytes)
    return InvalidArgument("MaximumMessageSize must be 1024 to 1048576 bytes");
  if (c.redrive) {
    CRUNCHER_RETURN_IF_ERROR(
        ValidateStoredQueueName(c.redrive->dead_letter_queue)
            .WithContext("redrive policy"));
    if (c.redrive->max_receive_count < 1 || c.redrive->max_receive_count > 1000)
      return InvalidArgument("maxReceiveCount must be 1 to 1000");
  }
  return Status::Ok();
}

Result<std::unique_ptr<LocalQueueStore>> LocalQueueStore::Open(
    const std::string& data_dir, Durability durability, Clock& clock) {
  CRUNCHER_RETURN_IF_ERROR(PrepareDataDir(data_dir));
  CRUNCHER_ASSIGN_OR_RETURN(auto doorbell,
                            Doorbell::Open(data_dir + "/queue.doorbell"));
  CRUNCHER_ASSIGN_OR_RETURN(
      auto db, Database::Open(data_dir + "/cruncher.db", durability));
  CRUNCHER_RETURN_IF_ERROR(db->EnsureSchema(
      kSchema,
      {"queues", "messages", "messages_by_visibility", "messages_by_age"}));
  CRUNCHER_RETURN_IF_ERROR(AddMissingColumns(*db));
  return std::unique_ptr<LocalQueueStore>(
      new LocalQueueStore(data_dir, std::move(db), std::move(doorbell), clock));
}

Result<std::pair<int64_t, QueueInfo>> LocalQueueStore::LoadQueue(
    const std::string& name) {
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("SELECT id, created_at, modified_at, visibility_timeout, "
                   "retention_seconds, delay_seconds, receive_wait_seconds, "
                   "max_message_bytes, dlq_name, max_receive_count, policy, "
                   "redrive_allow_policy FROM queues WHERE name = ?"));
  st.Bind(1, name);
  if (!st.Step()) {
    CRUNCHER_RETURN_IF_ERROR(st.status());
    return NotFound("queue " + name + " does not exist");
  }
  QueueInfo info;
  info.name = name;
  info.created_at = st.Int(1);
  info.modified_at = st.Int(2);
  info.config.visibility_timeout = static_cast<int>(st.Int(3));
  info.config.retention_seconds = static_cast<int>(st.Int(4));
  info.config.delay_seconds = static_cast<int>(st.Int(5));
  info.config.receive_wait_seconds = static_cast<int>(st.Int(6));
  info.config.max_message_bytes = static_cast<int>(st.Int(7));
  if (!st.IsNull(8)) {
    info.config.redrive =
        RedrivePolicy{st.Text(8), static_cast<int>(st.Int(9))};
  }
  info.config.policy = st.Text(10);
  info.config.redrive_allow_policy = st.Text(11);
  return std::make_pair(st.Int(0), std::move(info));
}

Status LocalQueueStore::CreateQueue(const std::string& name,
                                    const QueueConfig& config,
                                    const QueueTags& tags) {
  CRUNCHER_RETURN_IF_ERROR(ValidateStoredQueueName(name));
  CRUNCHER_RETURN_IF_ERROR(ValidateQueueConfig(config));
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(*db_);
  CRUNCHER_RETURN_IF_ERROR(tx.Begin());
  auto existing = LoadQueue(name);
  if (existing.ok()) {
    if (existing->second.config == config) return Status::Ok();
    return AlreadyExists("queue " + name +
                         " already exists with different attributes");
  }
  if (existing.status().code() != StatusCode::kNotFound)
    return existing.status();
  // A policy may name a DLQ deleted since, and this queue the new one.
  CRUNCHER_RETURN_IF_ERROR(CheckNoRedriveCycle(name, config));
  Millis now = clock_.NowMillis();
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("INSERT INTO queues(name, created_at, modified_at, "
                   "visibility_timeout, retention_seconds, delay_seconds, "
                   "receive_wait_seconds, max_message_bytes, dlq_name, "
                   "max_receive_count, policy, redrive_allow_policy, tags) "
                   "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)"));
  st.Bind(1, name).Bind(2, now).Bind(3, now);
  st.Bind(4, config.visibility_timeout).Bind(5, config.retention_seconds);
  st.Bind(6, config.delay_seconds).Bind(7, config.receive_wait_seconds);
  st.Bind(8, config.max_message_bytes);
  if (config.redrive) {
    st.Bind(9, config.redrive->dead_letter_queue)
        .Bind(10, config.redrive->max_receive_count);
  }
  st.Bind(11, config.policy).Bind(12, config.redrive_allow_policy);
  st.Bind(13, TagsToJson(tags));
  CRUNCHER_RETURN_IF_ERROR(st.Run());
  return tx.Commit();
}

Result<QueueInfo> LocalQueueStore::GetQueue(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(auto loaded, LoadQueue(name));
  return loaded.second;
}

Status LocalQueueStore::CheckNoRedriveCycle(const std::string& name,
                                            const QueueConfig& config) {
  if (!config.redrive || config.redrive->dead_letter_queue == name) {
    return Status::Ok();
  }
  std::string path = name;
  std::set<std::string> seen = {name};
  std::string next = config.redrive->dead_letter_queue;
  while (seen.insert(next).second) {
    path += " -> " + next;
    auto queue = LoadQueue(next);
    if (queue.status().code() == StatusCode::kNotFound) return Status::Ok();
    CRUNCHER_RETURN_IF_ERROR(queue.status());
    const auto& redrive = queue->second.config.redrive;
    if (!redrive) return Status::Ok();
    next = redrive->dead_letter_queue;
  }
  // `next` was seen: the chain closes at this queue, or it ends in a queue
  // that is its own DLQ (harmless, and no cycle through this one).
  if (next != name) return Status::Ok();
  return InvalidArgument("the redrive policy of queue " + name +
                         " makes a cycle of dead-letter queues (" + path +
                         " -> " + name +
                         "): its messages would move from queue to queue and "
                         "never be delivered");
}

Status LocalQueueStore::SetQueueConfig(const std::string& name,
                                       const QueueConfig& config) {
  CRUNCHER_RETURN_IF_ERROR(ValidateQueueConfig(config));
  std::lock_guard<std::mutex> lock(mu_);
  // One transaction: another process cannot close a cycle in between.
  Transaction tx(*db_);
  CRUNCHER_RETURN_IF_ERROR(tx.Begin());
  CRUNCHER_RETURN_IF_ERROR(CheckNoRedriveCycle(name, config));
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("UPDATE queues SET modified_at=?, visibility_timeout=?, "
                   "retention_seconds=?, delay_seconds=?, "
                   "receive_wait_seconds=?, max_message_bytes=?, dlq_name=?, "
                   "max_receive_count=?, policy=?, redrive_allow_policy=? "
                   "WHERE name=?"));
  st.Bind(1, clock_.NowMillis()).Bind(2, config.visibility_timeout);
  st.Bind(3, config.retention_seconds).Bind(4, config.delay_seconds);
  st.Bind(5, config.receive_wait_seconds).Bind(6, config.max_message_bytes);
  if (config.redrive) {
    st.Bind(7, config.redrive->dead_letter_queue)
        .Bind(8, config.redrive->max_receive_count);
  }
  st.Bind(9, config.policy).Bind(10, config.redrive_allow_policy);
  st.Bind(11, name);
  CRUNCHER_RETURN_IF_ERROR(st.Run());
  if (db_->changes() == 0) return NotFound("queue " + name + " does not exist");
  return tx.Commit();
}

Result<std::vector<std::string>> LocalQueueStore::ListQueues(
    const std::string& prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare("SELECT name FROM queues ORDER BY name"));
  std::vector<std::string> names;
  while (st.Step()) {
    std::string name = st.Text(0);
    if (name.compare(0, prefix.size(), prefix) == 0) names.push_back(name);
  }
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return names;
}

Status LocalQueueStore::DeleteQueue(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(Statement st,
                            db_->Prepare("DELETE FROM queues WHERE name=?"));
  st.Bind(1, name);
  CRUNCHER_RETURN_IF_ERROR(st.Run());
  if (db_->changes() == 0) return NotFound("queue " + name + " does not exist");
  return Status::Ok();
}

Status LocalQueueStore::Purge(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(auto loaded, LoadQueue(name));
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare("DELETE FROM messages WHERE queue_id=?"));
  st.Bind(1, loaded.first);
  return st.Run();
}

Result<std::vector<std::string>> LocalQueueStore::DeadLetterSources(
    const std::string& dead_letter_queue) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("SELECT name FROM queues WHERE dlq_name=? ORDER BY name"));
  st.Bind(1, dead_letter_queue);
  std::vector<std::string> names;
  while (st.Step()) names.push_back(st.Text(0));
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return names;
}

Status LocalQueueStore::TagQueue(const std::string& name,
                                 const QueueTags& tags) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(*db_);
  CRUNCHER_RETURN_IF_ERROR(tx.Begin());
  CRUNCHER_ASSIGN_OR_RETURN(QueueTags current, LoadTags(name));
  for (const auto& [key, value] : tags) current[key] = value;
  CRUNCHER_RETURN_IF_ERROR(StoreTags(name, current));
  return tx.Commit();
}

Status LocalQueueStore::UntagQueue(const std::string& name,
                                   const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(*db_);
  CRUNCHER_RETURN_IF_ERROR(tx.Begin());
  CRUNCHER_ASSIGN_OR_RETURN(QueueTags current, LoadTags(name));
  for (const auto& key : keys) current.erase(key);
  CRUNCHER_RETURN_IF_ERROR(StoreTags(name, current));
  return tx.Commit();
}

Result<QueueTags> LocalQueueStore::GetQueueTags(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  return LoadTags(name);
}

Result<QueueTags> LocalQueueStore::LoadTags(const std::string& name) {
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare("SELECT tags FROM queues WHERE name=?"));
  st.Bind(1, name);
  if (!st.Step()) {
    CRUNCHER_RETURN_IF_ERROR(st.status());
    return NotFound("queue " + name + " does not exist");
  }
  return TagsFromJson(st.Text(0));
}

Status LocalQueueStore::StoreTags(const std::string& name,
                                  const QueueTags& tags) {
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare("UPDATE queues SET tags=? WHERE name=?"));
  st.Bind(1, TagsToJson(tags)).Bind(2, name);
  return st.Run();
}

Result<int64_t> LocalQueueStore::InsertMessage(int64_t queue_id,
                                               const QueueConfig& config,
                                               const OutgoingMessage& message,
                                               Millis now,
                                               std::string* message_id) {
  if (message.body.empty()) {
    return InvalidArgument("message body must not be empty");
  }
  if (MessageSize(message) > static_cast<size_t>(config.max_message_bytes)) {
    return InvalidArgument("message of " +
                           std::to_string(MessageSize(message)) +
                           " bytes is longer than the queue's limit of " +
                           std::to_string(config.max_message_bytes) + " bytes");
  }
  const int delay = message.delay_seconds.value_or(config.delay_seconds);
  if (delay < 0 || delay > 900) {
    return InvalidArgument("DelaySeconds must be 0 to 900");
  }
  *message_id = RandomUuid();
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("INSERT INTO messages(queue_id, message_id, body, "
                   "attributes, sent_at, visible_at, aws_trace_header) "
                   "VALUES(?,?,?,?,?,?,?)"));
  st.Bind(1, queue_id).Bind(2, *message_id).Bind(3, message.body);
  st.Bind(4, AttributesToJson(message.attributes).dump());
  st.Bind(5, now).Bind(6, now + delay * 1000LL);
  st.Bind(7, message.aws_trace_header);
  CRUNCHER_RETURN_IF_ERROR(st.Run());
  return sqlite3_last_insert_rowid(db_->handle());
}

Result<std::string> LocalQueueStore::Send(const std::string& queue,
                                          const OutgoingMessage& message) {
  CRUNCHER_ASSIGN_OR_RETURN(auto ids, SendBatch(queue, {message}));
  return ids.front();
}

Result<std::vector<std::string>> LocalQueueStore::SendBatch(
    const std::string& queue, const std::vector<OutgoingMessage>& messages) {
  std::vector<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(*db_);
    CRUNCHER_RETURN_IF_ERROR(tx.Begin());
    CRUNCHER_ASSIGN_OR_RETURN(auto loaded, LoadQueue(queue));
    Millis now = clock_.NowMillis();
    for (const auto& m : messages) {
      std::string id;
      auto inserted =
          InsertMessage(loaded.first, loaded.second.config, m, now, &id);
      if (!inserted.ok())
        return inserted.status().WithContext("queue " + queue);
      ids.push_back(std::move(id));
    }
    CRUNCHER_RETURN_IF_ERROR(tx.Commit());
  }
  doorbell_->Ring();
  return ids;
}

void LocalQueueStore::DropExpired(int64_t queue_id, const QueueConfig& config,
                                  Millis now) {
  auto st = db_->Prepare("DELETE FROM messages WHERE queue_id=? AND sent_at<?");
  if (!st.ok()) return;
  st->Bind(1, queue_id).Bind(2, now - config.retention_seconds * 1000LL);
  // Expiry is housekeeping: a failure here leaves old messages for the next
  // receive and must not fail this one.
  (void)st->Run();
}

Result<std::vector<Message>> LocalQueueStore::ReceiveOnce(
    const std::string& queue, int max, std::optional<int> visibility,
    Millis* next_visible) {
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(*db_);
  CRUNCHER_RETURN_IF_ERROR(tx.Begin());
  CRUNCHER_ASSIGN_OR_RETURN(auto loaded, LoadQueue(queue));
  const auto& [queue_id, info] = loaded;
  Millis now = clock_.NowMillis();
  DropExpired(queue_id, info.config, now);

  std::optional<int64_t> dlq_id;
  if (info.config.redrive) {
    auto dlq = LoadQueue(info.config.redrive->dead_letter_queue);
    // A queue named as its own dead-letter queue has nowhere to move a
    // message to: moving it onto itself would select it again, forever.
    if (dlq.ok() && dlq->first != queue_id) dlq_id = dlq->first;
  }
  int vis = visibility.value_or(info.config.visibility_timeout);

  CRUNCHER_ASSIGN_OR_RETURN(
      Statement select,
      db_->Prepare(std::string("SELECT ") + kMessageColumns +
                   " FROM messages WHERE queue_id=? AND visible_at<=? "
                   "ORDER BY visible_at, seq LIMIT ?"));
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement deliver,
      db_->Prepare("UPDATE messages SET receive_count=?, first_received_at=?, "
                   "visible_at=?, receipt=? WHERE seq=?"));
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement to_dlq,
      db_->Prepare("UPDATE messages SET queue_id=?, visible_at=?, receipt=NULL "
                   "WHERE seq=?"));
  std::vector<Message> out;
  bool moved_any = false;
  // Messages moved to the DLQ do not fill the batch, so select again until
  // the batch is full or the queue has nothing visible.
  for (bool more = true; more && static_cast<int>(out.size()) < max;) {
    select.Reset();
    select.Bind(1, queue_id)
        .Bind(2, now)
        .Bind(3, max - static_cast<int>(out.size()));
    more = false;
    std::vector<std::pair<int64_t, Message>> rows;
    while (select.Step())
      rows.emplace_back(select.Int(0), MessageFromRow(select));
    CRUNCHER_RETURN_IF_ERROR(select.status());
    for (auto& [seq, m] : rows) {
      if (dlq_id && m.receive_count >= info.config.redrive->max_receive_count) {
        to_dlq.Reset();
        to_dlq.Bind(1, *dlq_id).Bind(2, now).Bind(3, seq);
        CRUNCHER_RETURN_IF_ERROR(to_dlq.Run());
        moved_any = more = true;
        continue;
      }
      m.receive_count += 1;
      if (m.first_received_at == 0) m.first_received_at = now;
      std::string token = RandomHex(12);
      m.receipt_handle = std::to_string(seq) + "." + token;
      deliver.Reset();
      deliver.Bind(1, m.receive_count).Bind(2, m.first_received_at);
      deliver.Bind(3, now + vis * 1000LL).Bind(4, token).Bind(5, seq);
      CRUNCHER_RETURN_IF_ERROR(deliver.Run());
      out.push_back(std::move(m));
    }
  }
  if (out.empty()) {
    CRUNCHER_ASSIGN_OR_RETURN(
        Statement next,
        db_->Prepare("SELECT MIN(visible_at) FROM messages WHERE queue_id=?"));
    next.Bind(1, queue_id);
    *next_visible = next.Step() && !next.IsNull(0) ? next.Int(0) : 0;
    CRUNCHER_RETURN_IF_ERROR(next.status());
  }
  CRUNCHER_RETURN_IF_ERROR(tx.Commit());
  if (moved_any) doorbell_->Ring();
  return out;
}

Result<std::vector<Message>> LocalQueueStore::Receive(
    const std::string& queue, int max_messages, int wait_seconds,
    std::optional<int> visibility_seconds, const std::stop_token& stop) {
  if (max_messages < 1 || max_messages > kMaxBatch) {
    return InvalidArgument("MaxNumberOfMessages must be 1 to 10");
  }
  if (wait_seconds < 0 || wait_seconds > kMaxWaitSeconds) {
    return InvalidArgument("WaitTimeSeconds must be 0 to 20");
  }
  if (visibility_seconds && (*visibility_seconds < 0 ||
                             *visibility_seconds > kMaxVisibilitySeconds)) {
    return InvalidArgument("VisibilityTimeout must be 0 to 43200 seconds");
  }
  // Stopping: hide nothing that the caller may no longer be able to use (an
  // endpoint closing its connections would leave it invisible).
  if (stop.stop_requested()) return std::vector<Message>{};
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  for (;;) {
    uint64_t seen = doorbell_->generation();
    Millis next_visible = 0;
    auto got =
        ReceiveOnce(queue, max_messages, visibility_seconds, &next_visible);
    if (!got.ok())
      return got.status().WithContext("receive from queue " + queue);
    auto now = std::chrono::steady_clock::now();
    if (!got->empty() || now >= deadline || stop.stop_requested()) return got;
    // Sleep until a ring, the deadline, or the next invisible message
    // becoming visible again, whichever comes first.
    auto wake = deadline;
    if (next_visible > 0) {
      auto until = std::chrono::milliseconds(
          std::max<Millis>(1, next_visible - clock_.NowMillis()));
      wake = std::min(wake, now + until);
    }
    doorbell_->WaitUntil(seen, wake, stop);
  }
}

std::vector<BatchEntryResult> LocalQueueStore::ForEachHandle(
    const std::string& queue, const std::vector<std::string>& handles,
    const HandleAction& action) {
  std::vector<BatchEntryResult> results;
  auto fail_all = [&](const Status& s) {
    results.clear();
    for (const auto& h : handles) results.push_back({h, s});
    return results;
  };
  std::lock_guard<std::mutex> lock(mu_);
  Transaction tx(*db_);
  if (auto s = tx.Begin(); !s.ok()) return fail_all(s);
  auto loaded = LoadQueue(queue);
  if (!loaded.ok()) return fail_all(loaded.status());
  Millis now = clock_.NowMillis();
  for (const auto& handle : handles) {
    int64_t seq = 0;
    std::string token;
    if (!ParseHandle(handle, &seq, &token)) {
      results.push_back(
          {handle, InvalidArgument("receipt handle is invalid: " + handle)});
      continue;
    }
    Status entry;
    Status db = action(loaded->first, seq, token, now, &entry);
    if (!db.ok()) return fail_all(db);
    results.push_back({handle, entry});
  }
  if (auto s = tx.Commit(); !s.ok()) return fail_all(s);
  return results;
}

std::vector<BatchEntryResult> LocalQueueStore::Delete(
    const std::string& queue, const std::vector<std::string>& handles) {
  return ForEachHandle(
      queue, handles,
      [this](int64_t queue_id, int64_t seq, const std::string& token, Millis,
             Status* entry) {
        CRUNCHER_ASSIGN_OR_RETURN(
            Statement del,
            db_->Prepare("DELETE FROM messages WHERE seq=? AND queue_id=? AND "
                         "receipt=?"));
        del.Bind(1, seq).Bind(2, queue_id).Bind(3, token);
        CRUNCHER_RETURN_IF_ERROR(del.Run());
        if (db_->changes() > 0) return Status::Ok();  // *entry stays OK
        CRUNCHER_ASSIGN_OR_RETURN(
            Statement exists,
            db_->Prepare("SELECT 1 FROM messages WHERE seq=? AND queue_id=?"));
        exists.Bind(1, seq).Bind(2, queue_id);
        bool still_there = exists.Step();
        CRUNCHER_RETURN_IF_ERROR(exists.status());
        // A message that is gone was deleted already: that counts as done.
        if (still_there) {
          *entry = FailedPrecondition(
              "receipt handle is stale: the message was delivered again "
              "since; use the newest handle");
        }
        return Status::Ok();
      });
}

std::vector<BatchEntryResult> LocalQueueStore::ChangeVisibility(
    const std::string& queue, const std::vector<std::string>& handles,
    int visibility_seconds) {
  if (visibility_seconds < 0 || visibility_seconds > kMaxVisibilitySeconds) {
    std::vector<BatchEntryResult> results;
    for (const auto& h : handles) {
      results.push_back(
          {h, InvalidArgument("VisibilityTimeout must be 0 to 43200 seconds")});
    }
    return results;
  }
  bool made_visible = false;
  auto results = ForEachHandle(
      queue, handles,
      [&](int64_t queue_id, int64_t seq, const std::string& token, Millis now,
          Status* entry) {
        CRUNCHER_ASSIGN_OR_RETURN(
            Statement upd,
            db_->Prepare("UPDATE messages SET visible_at=? WHERE seq=? AND "
                         "queue_id=? AND receipt=? AND visible_at>?"));
        upd.Bind(1, now + visibility_seconds * 1000LL).Bind(2, seq);
        upd.Bind(3, queue_id).Bind(4, token).Bind(5, now);
        CRUNCHER_RETURN_IF_ERROR(upd.Run());
        if (db_->changes() == 0) {
          *entry = FailedPrecondition(
              "message is not in flight for this receipt handle");
        } else {
          made_visible = made_visible || visibility_seconds == 0;
        }
        return Status::Ok();
      });
  if (made_visible) doorbell_->Ring();
  return results;
}

Result<QueueDepth> LocalQueueStore::Depth(const std::string& queue) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(auto loaded, LoadQueue(queue));
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("SELECT COALESCE(SUM(visible_at<=?1), 0), "
                   "COALESCE(SUM(visible_at>?1 AND receive_count>0), 0), "
                   "COALESCE(SUM(visible_at>?1 AND receive_count=0), 0) "
                   "FROM messages WHERE queue_id=?2"));
  st.Bind(1, clock_.NowMillis()).Bind(2, loaded.first);
  QueueDepth depth;
  if (st.Step()) {
    depth.visible = st.Int(0);
    depth.in_flight = st.Int(1);
    depth.delayed = st.Int(2);
  }
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return depth;
}

Result<std::vector<Message>> LocalQueueStore::Peek(const std::string& queue,
                                                   int limit) {
  std::lock_guard<std::mutex> lock(mu_);
  CRUNCHER_ASSIGN_OR_RETURN(auto loaded, LoadQueue(queue));
  CRUNCHER_ASSIGN_OR_RETURN(
      Statement st, db_->Prepare(std::string("SELECT ") + kMessageColumns +
                                 " FROM messages WHERE queue_id=? "
                                 "ORDER BY visible_at, seq LIMIT ?"));
  st.Bind(1, loaded.first).Bind(2, limit);
  std::vector<Message> out;
  while (st.Step()) out.push_back(MessageFromRow(st));
  CRUNCHER_RETURN_IF_ERROR(st.status());
  return out;
}

Result<long long> LocalQueueStore::MoveMessages(const std::string& from,
                                                const std::string& to,
                                                long long limit) {
  long long moved = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Transaction tx(*db_);
    CRUNCHER_RETURN_IF_ERROR(tx.Begin());
    CRUNCHER_ASSIGN_OR_RETURN(auto src, LoadQueue(from));
    CRUNCHER_ASSIGN_OR_RETURN(auto dst, LoadQueue(to));
    CRUNCHER_ASSIGN_OR_RETURN(
        Statement select,
        db_->Prepare("SELECT seq FROM messages WHERE queue_id=? "
                     "ORDER BY visible_at, seq LIMIT ?"));
    select.Bind(1, src.first).Bind(2, limit > 0 ? limit : -1);
    std::vector<int64_t> seqs;
    while (select.Step()) seqs.push_back(select.Int(0));
    CRUNCHER_RETURN_IF_ERROR(select.status());
    CRUNCHER_ASSIGN_OR_RETURN(
        Statement move,
        db_->Prepare("UPDATE messages SET queue_id=?, message_id=?, sent_at=?, "
                     "visible_at=?, receive_count=0, first_received_at=0, "
                     "receipt=NULL WHERE seq=?"));
    Millis now = clock_.NowMillis();
    for (int64_t seq : seqs) {
      move.Reset();
      move.Bind(1, dst.first).Bind(2, RandomUuid()).Bind(3, now).Bind(4, now);
      move.Bind(5, seq);
      CRUNCHER_RETURN_IF_ERROR(move.Run());
      ++moved;
    }
    CRUNCHER_RETURN_IF_ERROR(tx.Commit());
  }
  if (moved > 0) doorbell_->Ring();
  return moved;
}

}  // namespace cruncher::local
