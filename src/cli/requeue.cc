// cruncher requeue JOB... | --all-failed
#include <iostream>

#include "app/queue_backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "dispatch/operations.h"

namespace cruncher::cli {
namespace {

struct RequeueOptions {
  app::BackendOptions backend;
  std::vector<std::string> jobs;
  bool all_failed = false;
};

int Run(const RequeueOptions& o) {
  if (o.jobs.empty() == !o.all_failed) {
    std::cerr
        << "error: name Jobs to requeue, or use --all-failed (not both)\n";
    return kExitUsage;
  }
  if (!CheckJobNameArgs(o.jobs)) return kExitUsage;
  auto store = app::OpenJobBackend(o.backend);
  if (!store.ok()) return Fail(store.status());
  auto queues = app::OpenQueueBackend(o.backend);
  if (!queues.ok()) return Fail(queues.status());
  std::vector<std::string> names = o.jobs;
  if (o.all_failed) {
    auto all = (*store)->List();
    if (!all.ok()) return Fail(all.status());
    for (const auto& j : *all) {
      // This queue's failed Jobs (the local store holds every queue's).
      const std::string origin = j.annotation(kQueueAnnotation);
      if (j.state() == JobState::kFailed &&
          (origin.empty() || origin == (*queues)->queue().name())) {
        names.push_back(j.name());
      }
    }
    if (names.empty()) std::cout << "no failed Jobs to requeue\n";
  }
  int failures = 0;
  for (const auto& name : names) {
    auto id = dispatch::RequeueJob(**store, (*queues)->queue(), name);
    if (!id.ok()) {
      Fail(id.status());
      ++failures;
      continue;
    }
    std::cout << "job " << name << " requeued as message " << *id << "\n";
  }
  return failures == 0 ? kExitOk : kExitFailure;
}

}  // namespace

void RegisterRequeue(CLI::App& app) {
  auto o = std::make_shared<RequeueOptions>();
  o->backend.create = false;  // acts on what is there; creates nothing
  auto* cmd = app.add_subcommand(
      "requeue",
      "Send finished Jobs' tasks back to the queue, then delete the Jobs");
  AddBackendOptions(cmd, o->backend);
  cmd->add_option("jobs", o->jobs, "Job names");
  cmd->add_flag("--all-failed", o->all_failed,
                "Requeue every Failed Job of this queue");
  SetCommand(cmd, [o] { return Run(*o); });
}

}  // namespace cruncher::cli
