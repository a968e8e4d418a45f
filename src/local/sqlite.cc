#include "local/sqlite.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>

#include "local/data_dir.h"

namespace cruncher::local {
namespace {

std::shared_ptr<std::mutex> WriteMutexFor(const std::string& path) {
  static std::mutex registry_mu;
  static std::map<std::string, std::weak_ptr<std::mutex>> registry;
  std::error_code ec;
  std::string key = std::filesystem::weakly_canonical(path, ec).string();
  if (ec) key = path;
  std::lock_guard<std::mutex> lock(registry_mu);
  auto& weak = registry[key];
  auto mu = weak.lock();
  if (!mu) {
    mu = std::make_shared<std::mutex>();
    weak = mu;
  }
  return mu;
}

std::mutex g_fault_injector_mu;
std::shared_ptr<FaultInjector> g_fault_injector;  // guarded by the mutex

std::shared_ptr<FaultInjector> CurrentFaultInjector() {
  std::lock_guard<std::mutex> lock(g_fault_injector_mu);
  return g_fault_injector;
}

Status StatusFor(int rc, std::string msg) {
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED)
    return Unavailable(std::move(msg));
  if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN ||
      primary == SQLITE_IOERR || primary == SQLITE_FULL ||
      primary == SQLITE_PERM) {
    return Unavailable(std::move(msg));
  }
  return Internal(std::move(msg));
}

// Runs one statement that returns no rows through the statement cache.
// BEGIN and COMMIT run once per transaction, and compiling them each time
// (as Exec does) cost more than running them.
Status RunCached(Database& db, std::string_view sql) {
  CRUNCHER_ASSIGN_OR_RETURN(Statement st, db.Prepare(sql));
  return st.Run();
}

}  // namespace

void SetFaultInjector(std::shared_ptr<FaultInjector> injector) {
  std::lock_guard<std::mutex> lock(g_fault_injector_mu);
  g_fault_injector = std::move(injector);
}

Database::Database(sqlite3* db, std::string path)
    : db_(db), path_(std::move(path)), write_mutex_(WriteMutexFor(path_)) {}

Result<std::unique_ptr<Database>> Database::Open(const std::string& path,
                                                 Durability durability) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  std::unique_ptr<Database> db(new Database(raw, path));
  if (rc != SQLITE_OK) {
    return Unavailable("cannot open database " + path + ": " +
                       (raw ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
  }
  // Private, by path and never through a descriptor of our own: closing any
  // descriptor of the file drops the POSIX locks that SQLite's connections
  // in this process hold on it, and another process then checkpoints and
  // deletes the WAL under them. Before the switch to WAL below, so the WAL
  // and shared-memory files, which take the database file's mode, are
  // private too (the data directory is 0700 meanwhile).
  if (::chmod(path.c_str(), 0600) != 0) {
    return Unavailable("cannot make database " + path +
                       " private: " + std::strerror(errno));
  }
  sqlite3_busy_timeout(raw, 10'000);
  // Two processes opening a fresh database at once (the CLI and `local
  // serve`) both try to switch it to WAL; the loser gets SQLITE_BUSY at once,
  // without the busy handler's wait, so wait here (as long as that would).
  Status wal = db->Exec("PRAGMA journal_mode=WAL");
  for (int tries = 0;
       !wal.ok() && wal.code() == StatusCode::kUnavailable && tries < 200;
       ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    wal = db->Exec("PRAGMA journal_mode=WAL");
  }
  CRUNCHER_RETURN_IF_ERROR(wal);
  CRUNCHER_RETURN_IF_ERROR(db->Exec(durability == Durability::kFull
                                        ? "PRAGMA synchronous=FULL"
                                        : "PRAGMA synchronous=NORMAL"));
  CRUNCHER_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  return db;
}

Database::~Database() {
  for (auto& [sql, cached] : statements_) sqlite3_finalize(cached.stmt);
  sqlite3_close_v2(db_);
}

Status Database::Error(int rc, std::string_view what) const {
  return ErrorWithMessage(rc, what, sqlite3_errmsg(db_));
}

Status Database::ErrorFromCode(int rc, std::string_view what) const {
  return ErrorWithMessage(rc, what, sqlite3_errstr(rc));
}

Status Database::ErrorWithMessage(int rc, std::string_view what,
                                  std::string_view message) const {
  // A full disk is the operator's to fix, and the SQL that met it says
  // nothing to them (it was the whole schema for a read-only `status`).
  // Creating the WAL's shared-memory file on a full disk is an I/O error.
  const int primary = rc & 0xff;
  if (primary == SQLITE_FULL ||
      (primary == SQLITE_IOERR && FilesystemFull(path_))) {
    return StatusFor(rc, "disk full: cannot write " + path_ + " (" +
                             std::string(message) + ")");
  }
  return StatusFor(rc, "database " + path_ + ": " + std::string(what) + ": " +
                           std::string(message));
}

Status Database::EnsureSchema(std::string_view ddl,
                              std::initializer_list<std::string_view> objects) {
  for (std::string_view name : objects) {
    CRUNCHER_ASSIGN_OR_RETURN(
        Statement st, Prepare("SELECT 1 FROM sqlite_master WHERE name=?"));
    st.Bind(1, name);
    if (!st.Step()) {
      CRUNCHER_RETURN_IF_ERROR(st.status());
      return Exec(ddl);
    }
  }
  return Status::Ok();
}

Status Database::Exec(std::string_view sql) {
  std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, text);
  return Status::Ok();
}

Result<Statement> Database::Prepare(std::string_view sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end() && !it->second.in_use) {
    it->second.in_use = true;
    return Statement(this, it->second.stmt, &it->second.in_use);
  }
  // A text in use already (one caller holding two Statements of it) gets a
  // statement of its own, finalized after use.
  const bool keep =
      it == statements_.end() && statements_.size() < kMaxCachedStatements;
  sqlite3_stmt* stmt = nullptr;
  int rc =
      sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                         keep ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "prepare " + std::string(sql));
  // Text without a statement (a comment) prepares to null: nothing to keep.
  if (!keep || stmt == nullptr) return Statement(this, stmt, nullptr);
  CachedStatement& cached =
      statements_.emplace(std::string(sql), CachedStatement{stmt, true})
          .first->second;
  return Statement(this, stmt, &cached.in_use);
}

int64_t Database::changes() const { return sqlite3_changes64(db_); }

Transaction::~Transaction() {
  if (open_) (void)db_.Exec("ROLLBACK");
  // writer_ unlocks itself after the rollback.
}

Status Transaction::Begin() {
  writer_ = std::unique_lock<std::mutex>(db_.write_mutex());
  Status s = RunCached(db_, "BEGIN IMMEDIATE");
  if (!s.ok()) {
    writer_.unlock();
    return s;
  }
  open_ = true;
  return Status::Ok();
}

Status Transaction::Commit() {
  if (auto injector = CurrentFaultInjector()) {
    int rc = injector->BeforeCommit(db_.path());
    if (rc != SQLITE_OK) return db_.ErrorFromCode(rc, "COMMIT");
  }
  CRUNCHER_RETURN_IF_ERROR(RunCached(db_, "COMMIT"));
  open_ = false;
  writer_.unlock();
  return Status::Ok();
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_),
      stmt_(other.stmt_),
      in_use_(other.in_use_),
      status_(std::move(other.status_)) {
  other.stmt_ = nullptr;
  other.in_use_ = nullptr;
}

Statement::~Statement() {
  if (in_use_ == nullptr) {
    sqlite3_finalize(stmt_);
    return;
  }
  // Reset ends the statement's read of the database, as finalizing would;
  // the next Prepare of its text then starts from a clean statement.
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  *in_use_ = false;
}

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::Bind(int index, std::string_view text) {
  sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                      SQLITE_UTF8);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

bool Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc != SQLITE_DONE) {
    status_ = db_->Error(rc, sqlite3_sql(stmt_));
  }
  return false;
}

Status Statement::Run() {
  while (Step()) {
  }
  return status_;
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  status_ = Status::Ok();
}

int64_t Statement::Int(int col) const {
  return sqlite3_column_int64(stmt_, col);
}

std::string Statement::Text(int col) const {
  const auto* p = sqlite3_column_blob(stmt_, col);
  int n = sqlite3_column_bytes(stmt_, col);
  return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(n))
           : std::string();
}

bool Statement::IsNull(int col) const {
  return sqlite3_column_type(stmt_, col) == SQLITE_NULL;
}

}  // namespace cruncher::local
