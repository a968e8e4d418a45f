// Issue 8, defect 16: the data directory holds task bodies and output, so
// it is private (0700, files 0600) whatever the umask, and an older, more
// open one is tightened.
#include "local/data_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <mutex>
#include <string>
#include <vector>

#include "core/log.h"
#include "fakes/test_util.h"
#include "local/executor.h"
#include "local/job_store.h"
#include "local/queue_store.h"

namespace cruncher::local {
namespace {

using cruncher::testing::TempDir;
using cruncher::testing::WaitFor;
using nlohmann::json;

mode_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class DataDirTest : public ::testing::Test {
 protected:
  void SetUp() override { old_umask_ = ::umask(022); }
  void TearDown() override { ::umask(old_umask_); }
  TempDir tmp_;
  mode_t old_umask_ = 0;
};

TEST_F(DataDirTest, EverythingIsPrivateWithUmask022) {
  const std::string dir = tmp_.path() + "/parent/data";
  auto queues = LocalQueueStore::Open(dir, Durability::kNormal);
  ASSERT_TRUE(queues.ok()) << queues.status().ToString();
  auto jobs = LocalJobStore::Open(dir, Durability::kNormal);
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  json job = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata", {{"name", "j"}}},
              {"spec",
               {{"template",
                 {{"spec",
                   {{"restartPolicy", "Never"},
                    {"containers",
                     {{{"name", "c"}, {"command", {"echo", "output"}}}}}}}}}}}};
  ASSERT_TRUE((*jobs)->Create(job).ok());
  {
    LocalExecutor executor(**jobs, {.slots = 1});
    ASSERT_TRUE(executor.Start().ok());
    ASSERT_TRUE(WaitFor([&] {
      auto j = (*jobs)->Get("j");
      return j.ok() && j->finished();
    }));
  }
  EXPECT_EQ(Mode(dir), 0700u);
  EXPECT_EQ(Mode(dir + "/logs"), 0700u);
  EXPECT_EQ(Mode(dir + "/logs/j"), 0700u);
  EXPECT_EQ(Mode((*jobs)->LogPath("j", 1)), 0600u);
  for (const char* file : {"cruncher.db", "cruncher.db-wal", "cruncher.db-shm",
                           "jobs.doorbell", "queue.doorbell"}) {
    SCOPED_TRACE(file);
    EXPECT_EQ(Mode(dir + "/" + file), 0600u);
  }
}

TEST_F(DataDirTest, AnOpenDataDirIsTightenedWithAWarning) {
  const std::string dir = tmp_.path() + "/data";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::ofstream(dir + "/jobs.doorbell") << "";
  ASSERT_EQ(::chmod((dir + "/jobs.doorbell").c_str(), 0644), 0);
  std::vector<std::string> lines;
  std::mutex mu;
  SetLogSink([&](const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(line);
  });
  auto jobs = LocalJobStore::Open(dir, Durability::kNormal);
  SetLogSink(nullptr);
  ASSERT_TRUE(jobs.ok()) << jobs.status().ToString();
  EXPECT_EQ(Mode(dir), 0700u);
  EXPECT_EQ(Mode(dir + "/jobs.doorbell"), 0600u);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find("data_dir_permissions_tightened"), std::string::npos)
      << lines[0];
}

TEST_F(DataDirTest, AFileInThePlaceOfTheDataDirIsAnError) {
  const std::string dir = tmp_.path() + "/file";
  std::ofstream(dir) << "x";
  Status s = PrepareDataDir(dir);
  EXPECT_EQ(s.code(), StatusCode::kUnavailable);
  EXPECT_NE(s.ToString().find("not a directory"), std::string::npos)
      << s.ToString();
}

}  // namespace
}  // namespace cruncher::local
