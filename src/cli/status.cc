// cruncher status: queue depth, in flight, DLQ depth, Jobs by state.
#include <iostream>
#include <map>
#include <optional>

#include "app/queue_backend.h"
#include "cli/commands.h"
#include "cli/common.h"

namespace cruncher::cli {
namespace {

struct StatusOptions {
  app::BackendOptions backend;
  std::string output = "table";
};

int Run(const StatusOptions& o) {
  auto queues = app::OpenQueueBackend(o.backend);
  if (!queues.ok()) return Fail(queues.status());
  app::QueueBackend& q = **queues;
  auto depth = q.queue().Depth();
  if (!depth.ok()) return Fail(depth.status());
  std::optional<QueueDepth> dlq_depth;
  if (q.dead_letter() != nullptr) {
    auto d = q.dead_letter()->Depth();
    if (!d.ok()) return Fail(d.status());
    dlq_depth = *d;
  }
  auto store = app::OpenJobBackend(o.backend);
  if (!store.ok()) return Fail(store.status());
  auto jobs = (*store)->List();
  if (!jobs.ok()) return Fail(jobs.status());
  std::map<std::string, int> by_state = {
      {"Pending", 0}, {"Running", 0}, {"Complete", 0}, {"Failed", 0}};
  for (const auto& j : *jobs) by_state[std::string(JobStateName(j.state()))]++;

  if (o.output == "json") {
    nlohmann::json out = {{"queue",
                           {{"name", q.queue_name()},
                            {"visible", depth->visible},
                            {"inFlight", depth->in_flight},
                            {"delayed", depth->delayed}}},
                          {"deadLetterQueue", nullptr},
                          {"jobs", by_state}};
    if (dlq_depth) {
      out["deadLetterQueue"] = {{"name", q.dead_letter_name()},
                                {"visible", dlq_depth->visible}};
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"QUEUE", "VISIBLE", "IN-FLIGHT", "DELAYED"},
      {q.queue_name(), std::to_string(depth->visible),
       std::to_string(depth->in_flight), std::to_string(depth->delayed)}};
  if (dlq_depth) {
    rows.push_back({q.dead_letter_name() + " (DLQ)",
                    std::to_string(dlq_depth->visible),
                    std::to_string(dlq_depth->in_flight),
                    std::to_string(dlq_depth->delayed)});
  }
  std::cout << FormatTable(rows);
  std::cout << "\n"
            << FormatTable(
                   {{"JOBS", "PENDING", "RUNNING", "COMPLETE", "FAILED"},
                    {std::to_string(jobs->size()),
                     std::to_string(by_state["Pending"]),
                     std::to_string(by_state["Running"]),
                     std::to_string(by_state["Complete"]),
                     std::to_string(by_state["Failed"])}});
  return kExitOk;
}

}  // namespace

void RegisterStatus(CLI::App& app) {
  auto o = std::make_shared<StatusOptions>();
  o->backend.create = false;  // acts on what is there; creates nothing
  auto* cmd = app.add_subcommand(
      "status",
      "Show queue depth, messages in flight, DLQ depth and Jobs by state");
  AddBackendOptions(cmd, o->backend);
  cmd->add_option("-o,--output", o->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  SetCommand(cmd, [o] { return Run(*o); });
}

}  // namespace cruncher::cli
