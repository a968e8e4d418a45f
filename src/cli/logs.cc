// cruncher logs JOB: the output of each attempt.
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"

namespace cruncher::cli {
namespace {

struct LogsOptions {
  BackendOptions backend;
  std::string job;
};

int Run(const LogsOptions& o) {
  auto store = OpenJobStore(o.backend);
  if (!store.ok()) return Fail(store.status());
  auto logs = (*store)->Logs(o.job);
  if (!logs.ok()) {
    return Fail(logs.status(), "list Jobs with: cruncher jobs");
  }
  if (logs->empty()) std::cerr << "job " << o.job << " has not run yet\n";
  for (const auto& attempt : *logs) {
    std::cout << "==> " << attempt.attempt << " <==\n" << attempt.output;
    if (!attempt.output.empty() && attempt.output.back() != '\n')
      std::cout << "\n";
  }
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
  SetCommand(cmd, [o] { return Run(*o); });
}

}  // namespace cruncher::cli
