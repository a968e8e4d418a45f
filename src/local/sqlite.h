// A thin RAII layer over SQLite: a connection and prepared statements whose
// errors become Status values naming the database and the SQL.
//
// Connections are opened in WAL mode with a busy timeout, so several
// processes (the CLI and `local serve`) share one data directory.
//
// A Database keeps the statements it prepared, by SQL text, and hands them
// out again: compiling SQL costs more than running the short statements
// the stores use (it was most of the SQS endpoint's CPU time).
//
// Thread-safety: a Database is not synchronized; its owner serializes use,
// including the destruction of its Statements, which must not outlive it.
#ifndef CRUNCHER_LOCAL_SQLITE_H_
#define CRUNCHER_LOCAL_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/status.h"

namespace cruncher::local {

class Statement;

// How much a commit waits for the disk. kFull syncs the WAL on every commit
// (survives power loss); kNormal survives a crash of the process.
enum class Durability { kFull, kNormal };

class Database {
 public:
  // Opens (creating) `path`. Unavailable if the file cannot be opened or
  // written, e.g. the directory is not writable.
  static Result<std::unique_ptr<Database>> Open(const std::string& path,
                                                Durability durability);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs `sql`, which may hold several statements, compiling it each time.
  Status Exec(std::string_view sql);
  // Runs the schema `ddl` unless every table and index in `objects` exists
  // already: opening a database for reading writes nothing (a read-only
  // command works on a full disk).
  Status EnsureSchema(std::string_view ddl,
                      std::initializer_list<std::string_view> objects);
  // One statement, fresh (reset, nothing bound). A text prepared before is
  // not compiled again unless a Statement of it is still in use.
  Result<Statement> Prepare(std::string_view sql);
  int64_t changes() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

  // Maps an SQLite result code to a Status ("busy" is Unavailable). A full
  // disk is "disk full: cannot write PATH (...)", without `what`.
  Status Error(int rc, std::string_view what) const;
  // The same for a result code SQLite did not report (an injected fault),
  // described by the code rather than the connection's last error.
  Status ErrorFromCode(int rc, std::string_view what) const;

  // Serializes write transactions of all connections to this file within
  // the process. SQLite's own busy handler would make a writer that finds
  // the file locked sleep for milliseconds; waiting on a mutex instead hands
  // the lock over at once. Other processes still meet the busy handler.
  std::mutex& write_mutex() const { return *write_mutex_; }

 private:
  Database(sqlite3* db, std::string path);
  Status ErrorWithMessage(int rc, std::string_view what,
                          std::string_view message) const;

  // A prepared statement kept for reuse; `in_use` while a Statement has it.
  struct CachedStatement {
    sqlite3_stmt* stmt = nullptr;
    bool in_use = false;
  };
  // Lets Prepare look a string_view up without copying it into a string.
  struct SqlHash {
    using is_transparent = void;
    size_t operator()(std::string_view sql) const {
      return std::hash<std::string_view>{}(sql);
    }
  };
  // The stores prepare a few dozen fixed texts; the bound only keeps a
  // caller that builds SQL text from values from growing the cache.
  static constexpr size_t kMaxCachedStatements = 256;

  sqlite3* db_;
  std::string path_;
  std::shared_ptr<std::mutex> write_mutex_;
  // Entries are never erased before the destructor, so a Statement may
  // point at its entry's `in_use`.
  std::unordered_map<std::string, CachedStatement, SqlHash, std::equal_to<>>
      statements_;
};

// Test seam, in the spirit of leveldb's FaultInjectionTestEnv: lets a test
// make chosen commits fail as a full disk, a busy database or an I/O error
// would, to check that callers keep what they could not record.
//
// Transaction::Commit consults the installed injector before it runs COMMIT;
// statements outside a Transaction (autocommit) do not.
class FaultInjector {
 public:
  virtual ~FaultInjector() = default;
  // Called from the committing thread with the database's path. Returns
  // SQLITE_OK to let the commit run, or the SQLite result code it fails with
  // instead (SQLITE_FULL, SQLITE_BUSY, SQLITE_IOERR, ...): Commit then returns
  // that error and the transaction is rolled back, as after a real failure.
  virtual int BeforeCommit(const std::string& path) = 0;
};

// Installs `injector` for every Database of this process; nullptr removes
// it. Only tests install one. Safe from any thread; a commit in progress
// keeps the injector it started with alive.
void SetFaultInjector(std::shared_ptr<FaultInjector> injector);

// BEGIN IMMEDIATE ... COMMIT; rolls back on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(Database& db) : db_(db) {}
  ~Transaction();
  Status Begin();
  Status Commit();

 private:
  Database& db_;
  std::unique_lock<std::mutex> writer_;
  bool open_ = false;
};

// Destruction returns a cached statement to its Database (reset, bindings
// cleared) and finalizes any other.
class Statement {
 public:
  Statement(Statement&& other) noexcept;
  Statement& operator=(Statement&&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& Bind(int index, std::string_view text);
  Statement& BindNull(int index);
  // Advances: true with a row, false when done; errors become `status()`.
  bool Step();
  // Runs a statement that returns no rows.
  Status Run();
  Status status() const { return status_; }
  void Reset();

  int64_t Int(int col) const;
  std::string Text(int col) const;
  bool IsNull(int col) const;

 private:
  friend class Database;
  // `in_use`: the cache entry to give `stmt` back to, or null to finalize it.
  Statement(Database* db, sqlite3_stmt* stmt, bool* in_use)
      : db_(db), stmt_(stmt), in_use_(in_use) {}
  Database* db_;
  sqlite3_stmt* stmt_;
  bool* in_use_;
  Status status_;
};

}  // namespace cruncher::local

#endif  // CRUNCHER_LOCAL_SQLITE_H_
