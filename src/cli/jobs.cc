// cruncher jobs [--state S] [-o table|json|wide]
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"

namespace cruncher::cli {
namespace {

struct JobsOptions {
  app::BackendOptions backend;
  std::string state;
  std::string output = "table";
};

int Run(const JobsOptions& o) {
  std::optional<JobState> state;
  if (!o.state.empty()) {
    state = ParseJobState(o.state);
    if (!state) {
      std::cerr
          << "error: --state must be Pending, Running, Complete or Failed\n";
      return kExitUsage;
    }
  }
  auto store = app::OpenJobBackend(o.backend);
  if (!store.ok()) return Fail(store.status());
  auto all = (*store)->List();
  if (!all.ok()) return Fail(all.status());
  std::vector<Job> jobs;
  for (auto& j : *all) {
    if (!state || j.state() == *state) jobs.push_back(std::move(j));
  }
  if (o.output == "json") {
    std::cout << JobListJson(jobs).dump(2) << "\n";
  } else if (jobs.empty()) {
    std::cerr << "No jobs found.\n";
  } else {
    std::cout << FormatJobTable(jobs, o.output == "wide",
                                SystemClock::Get().NowMillis());
  }
  return kExitOk;
}

}  // namespace

void RegisterJobs(CLI::App& app) {
  auto o = std::make_shared<JobsOptions>();
  o->backend.create = false;  // acts on what is there; creates nothing
  auto* cmd = app.add_subcommand(
      "jobs", "List Cruncher's Jobs with their task and state");
  AddBackendOptions(cmd, o->backend);
  cmd->add_option(
      "--state", o->state,
      "Only Jobs in this state: Pending, Running, Complete, Failed");
  cmd->add_option("-o,--output", o->output, "table, wide or json")
      ->check(CLI::IsMember({"table", "wide", "json"}))
      ->capture_default_str();
  SetCommand(cmd, [o] { return Run(*o); });
}

}  // namespace cruncher::cli
