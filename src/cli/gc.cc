// cruncher gc [--older-than DURATION] [--include-failed]
#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "dispatch/operations.h"

namespace cruncher::cli {
namespace {

struct GcCommandOptions {
  app::BackendOptions backend;
  std::string older_than = "0";
  bool include_failed = false;
};

int Run(const GcCommandOptions& o) {
  auto age = ParseDuration(o.older_than);
  if (!age.ok()) {
    std::cerr << "error: --older-than: " << age.status().message() << "\n";
    return kExitUsage;
  }
  auto store = app::OpenJobBackend(o.backend);
  if (!store.ok()) return Fail(store.status());
  auto deleted = dispatch::CollectGarbage(**store, {*age, o.include_failed},
                                          SystemClock::Get().NowMillis());
  if (!deleted.ok()) return Fail(deleted.status());
  for (const auto& name : *deleted) std::cout << "job " << name << " deleted\n";
  std::cout << deleted->size() << " finished Job"
            << (deleted->size() == 1 ? "" : "s") << " deleted\n";
  return kExitOk;
}

}  // namespace

void RegisterGc(CLI::App& app) {
  auto o = std::make_shared<GcCommandOptions>();
  o->backend.create = false;  // acts on what is there; creates nothing
  auto* cmd = app.add_subcommand(
      "gc",
      "Delete finished Jobs (Complete, and Failed with --include-failed)");
  AddBackendOptions(cmd, o->backend);
  cmd->add_option("--older-than", o->older_than,
                  "Only Jobs finished at least this long ago (e.g. 1h, 30m)")
      ->capture_default_str();
  cmd->add_flag(
      "--include-failed", o->include_failed,
      "Also delete Failed Jobs (they are kept for requeue by default)");
  SetCommand(cmd, [o] { return Run(*o); });
}

}  // namespace cruncher::cli
