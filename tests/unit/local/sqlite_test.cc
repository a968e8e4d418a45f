// Database keeps prepared statements for reuse; a reused one must behave as
// a freshly prepared one would.
#include "local/sqlite.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "fakes/test_util.h"

namespace cruncher::local {
namespace {

using cruncher::testing::TempDir;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = Database::Open(dir_.path() + "/test.db", Durability::kNormal);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    db_ = std::move(db).value();
    ASSERT_TRUE(db_->Exec("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);"
                          "INSERT INTO t VALUES(1, 'one'), (2, 'two');")
                    .ok());
  }

  TempDir dir_;
  std::unique_ptr<Database> db_;
};

TEST_F(SqliteTest, ReusedStatementStartsFromTheFirstRowWithNothingBound) {
  constexpr const char* kSql = "SELECT ?, v FROM t ORDER BY k";
  {
    auto st = db_->Prepare(kSql);
    ASSERT_TRUE(st.ok()) << st.status().ToString();
    st->Bind(1, "bound");
    ASSERT_TRUE(st->Step());  // left on the first row, not run to the end
    EXPECT_EQ(st->Text(0), "bound");
  }
  auto st = db_->Prepare(kSql);
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  ASSERT_TRUE(st->Step());
  EXPECT_TRUE(st->IsNull(0));
  EXPECT_EQ(st->Text(1), "one");
}

TEST_F(SqliteTest, TwoStatementsOfOneTextAtOnceAreIndependent) {
  constexpr const char* kSql = "SELECT v FROM t WHERE k=?";
  auto first = db_->Prepare(kSql);
  auto second = db_->Prepare(kSql);
  ASSERT_TRUE(first.ok() && second.ok());
  first->Bind(1, int64_t{1});
  second->Bind(1, int64_t{2});
  ASSERT_TRUE(first->Step());
  ASSERT_TRUE(second->Step());
  EXPECT_EQ(first->Text(0), "one");
  EXPECT_EQ(second->Text(0), "two");
}

TEST_F(SqliteTest, ReusedStatementSeesSchemaChanges) {
  constexpr const char* kSql = "SELECT * FROM t WHERE k=1";
  {
    auto st = db_->Prepare(kSql);
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE(st->Step());
  }
  ASSERT_TRUE(db_->Exec("ALTER TABLE t ADD COLUMN w TEXT DEFAULT 'new'").ok());
  auto st = db_->Prepare(kSql);
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->Step()) << st->status().ToString();
  EXPECT_EQ(st->Text(2), "new");
}

// A statement given back mid-read must not keep its read open: another
// connection's writes would stay invisible to this one.
TEST_F(SqliteTest, ReturnedStatementHoldsNoReadTransaction) {
  auto other = Database::Open(dir_.path() + "/test.db", Durability::kNormal);
  ASSERT_TRUE(other.ok()) << other.status().ToString();
  constexpr const char* kCount = "SELECT COUNT(*) FROM t";
  {
    auto st = db_->Prepare(kCount);
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE(st->Step());
    EXPECT_EQ(st->Int(0), 2);
  }
  ASSERT_TRUE((*other)->Exec("INSERT INTO t VALUES(3, 'three')").ok());
  auto st = db_->Prepare(kCount);
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->Step());
  EXPECT_EQ(st->Int(0), 3);
}

TEST_F(SqliteTest, FailedStepLeavesTheReusedStatementUsable) {
  constexpr const char* kInsert = "INSERT INTO t(k, v) VALUES(?, ?)";
  {
    auto st = db_->Prepare(kInsert);
    ASSERT_TRUE(st.ok());
    st->Bind(1, int64_t{1}).Bind(2, "duplicate");
    EXPECT_FALSE(st->Run().ok());  // primary key taken
  }
  auto st = db_->Prepare(kInsert);
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(st->status().ok());
  st->Bind(1, int64_t{4}).Bind(2, "four");
  EXPECT_TRUE(st->Run().ok()) << st->status().ToString();
}

TEST_F(SqliteTest, TransactionsCommitAndRollBackThroughReusedStatements) {
  for (int i = 0; i < 3; ++i) {
    Transaction tx(*db_);
    ASSERT_TRUE(tx.Begin().ok());
    auto st = db_->Prepare("INSERT INTO t(v) VALUES('x')");
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE(st->Run().ok());
    if (i != 1) {
      ASSERT_TRUE(tx.Commit().ok());
    }  // i == 1 rolls back
  }
  auto st = db_->Prepare("SELECT COUNT(*) FROM t WHERE v='x'");
  ASSERT_TRUE(st.ok());
  ASSERT_TRUE(st->Step());
  EXPECT_EQ(st->Int(0), 2);
}

// Finding 10: on a full disk the error was the whole statement (for a
// read-only `status`, the schema's SQL) followed by SQLite's message.
TEST_F(SqliteTest, AFullDatabaseIsAShortDiskFullError) {
  // max_page_count makes SQLite fail as a full disk does (SQLITE_FULL).
  ASSERT_TRUE(db_->Exec("PRAGMA max_page_count=2").ok());
  const std::string sql = "INSERT INTO t(v) VALUES(zeroblob(100000))";
  Status s = db_->Exec(sql);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_EQ(s.message(), "disk full: cannot write " + dir_.path() +
                             "/test.db (database or disk is full)");
  auto st = db_->Prepare(sql);
  ASSERT_TRUE(st.ok());
  s = st->Run();
  EXPECT_EQ(s.message(), "disk full: cannot write " + dir_.path() +
                             "/test.db (database or disk is full)");
}

// Finding 10: opening a store for reading ran the schema's DDL, which a
// full disk refused; it runs only while something of it is missing.
TEST_F(SqliteTest, EnsureSchemaRunsTheDdlOnlyIfSomethingIsMissing) {
  const std::string ddl =
      "CREATE TABLE IF NOT EXISTS u(x);"
      "CREATE INDEX IF NOT EXISTS u_x ON u(x);";
  ASSERT_TRUE(db_->EnsureSchema(ddl, {"t", "u", "u_x"}).ok());
  auto count = [&](const char* name) {
    auto st = db_->Prepare("SELECT COUNT(*) FROM sqlite_master WHERE name=?");
    EXPECT_TRUE(st.ok());
    st->Bind(1, name);
    EXPECT_TRUE(st->Step());
    return st->Int(0);
  };
  EXPECT_EQ(count("u"), 1);
  EXPECT_EQ(count("u_x"), 1);
  // All present: DDL that would fail is not run.
  EXPECT_TRUE(db_->EnsureSchema("this is not SQL", {"t", "u", "u_x"}).ok());
  EXPECT_FALSE(db_->EnsureSchema("this is not SQL", {"t", "missing"}).ok());
}

}  // namespace
}  // namespace cruncher::local
