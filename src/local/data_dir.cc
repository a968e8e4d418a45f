#include "local/data_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/log.h"

namespace cruncher::local {
namespace {

constexpr mode_t kGroupOther = S_IRWXG | S_IRWXO;

// The files cruncher keeps directly in the data directory.
constexpr const char* kOwnFiles[] = {"cruncher.db",     "cruncher.db-wal",
                                     "cruncher.db-shm", "jobs.doorbell",
                                     "queue.doorbell",  "executor.lock"};

// Sets `path` to `mode` if others have access and we own it; true if it was
// tightened.
bool Tighten(const std::string& path, mode_t mode) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || S_ISLNK(st.st_mode)) return false;
  if ((st.st_mode & kGroupOther) == 0 || st.st_uid != ::geteuid()) return false;
  return ::chmod(path.c_str(), mode) == 0;
}

}  // namespace

Status MakePrivateDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0700) == 0 || errno == EEXIST) return Status::Ok();
  return Unavailable("cannot create directory " + dir + ": " +
                     std::strerror(errno));
}

Status PrepareDataDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::path path(dir);
  if (path.has_parent_path() && !path.parent_path().empty()) {
    std::filesystem::create_directories(path.parent_path(), ec);
    if (ec) {
      return Unavailable("cannot create data directory " + dir + ": " +
                         ec.message());
    }
  }
  CRUNCHER_RETURN_IF_ERROR(MakePrivateDir(dir));
  if (!std::filesystem::is_directory(dir, ec)) {
    return Unavailable("data directory " + dir + " is not a directory");
  }
  if (Tighten(dir, 0700)) {
    Log(LogLevel::kWarn, "data_dir_permissions_tightened",
        {{"path", dir},
         {"reason",
          "it holds task bodies and output; other users could read it"}});
  }
  for (const char* name : kOwnFiles) Tighten(dir + "/" + name, 0600);
  return Status::Ok();
}

Result<int> OpenPrivateFile(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Unavailable("cannot open " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) == 0 && (st.st_mode & kGroupOther) != 0 &&
      st.st_uid == ::geteuid()) {
    (void)::fchmod(fd, 0600);
  }
  return fd;
}

bool FilesystemFull(const std::string& path) {
  struct statvfs fs {};
  if (::statvfs(path.c_str(), &fs) != 0) return false;
  // Root may write into the blocks reserved for it; others may not.
  return (::geteuid() == 0 ? fs.f_bfree : fs.f_bavail) == 0;
}

}  // namespace cruncher::local
