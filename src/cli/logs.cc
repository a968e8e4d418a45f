// cruncher logs JOB [--tail N] [-f]: the output of each attempt, streamed.
#include <iostream>
#include <limits>

#include "cli/commands.h"
#include "cli/common.h"

namespace cruncher::cli {
namespace {

struct LogsOptions {
  app::BackendOptions backend;
  std::string job;
  long long tail = -1;
  bool follow = false;
};

// Prints each attempt under a "==> attempt <==" header, as the pieces come;
// flushed after each piece when following, so output shows as it is written.
class StdoutSink final : public LogSink {
 public:
  explicit StdoutSink(bool flush) : flush_(flush) {}

  void BeginAttempt(const std::string& attempt) override {
    EndLine();
    std::cout << "==> " << attempt << " <==\n";
    attempts_++;
    Flush();
  }
  void Write(std::string_view data) override {
    std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!data.empty()) ends_with_newline_ = data.back() == '\n';
    Flush();
  }
  // Ends an attempt's output that lacks a final newline.
  void EndLine() {
    if (!ends_with_newline_) std::cout << "\n";
    ends_with_newline_ = true;
  }
  int attempts() const { return attempts_; }

 private:
  void Flush() {
    if (flush_) std::cout.flush();
  }
  const bool flush_;
  bool ends_with_newline_ = true;
  int attempts_ = 0;
};

int Run(const LogsOptions& o) {
  if (!CheckJobNameArgs({o.job})) return kExitUsage;
  auto store = app::OpenJobBackend(o.backend);
  if (!store.ok()) return Fail(store.status());
  LogOptions options;
  options.tail_lines = o.tail;
  options.follow = o.follow;
  StdoutSink sink(o.follow);
  Status streamed = (*store)->StreamLogs(o.job, options, sink, {});
  sink.EndLine();
  std::cout.flush();
  if (!streamed.ok()) {
    return Fail(streamed, streamed.code() == StatusCode::kNotFound
                              ? "list Jobs with: cruncher jobs"
                              : "");
  }
  if (sink.attempts() == 0)
    std::cerr << "job " << o.job << " has not run yet\n";
  return kExitOk;
}

}  // namespace

void RegisterLogs(CLI::App& app) {
  auto o = std::make_shared<LogsOptions>();
  o->backend.create = false;  // acts on what is there; creates nothing
  auto* cmd = app.add_subcommand(
      "logs", "Print the output (stdout and stderr) of every attempt of a Job");
  AddBackendOptions(cmd, o->backend);
  cmd->add_option("job", o->job, "Job name")->required();
  cmd->add_option("--tail", o->tail,
                  "Only the last N lines of each attempt (-1: all)")
      ->check(CLI::Range(-1LL, std::numeric_limits<long long>::max()))
      ->capture_default_str();
  cmd->add_flag("-f,--follow", o->follow,
                "Keep printing as the Job's attempts write, until the Job "
                "finishes");
  SetCommand(cmd, [o] { return Run(*o); });
}

}  // namespace cruncher::cli
