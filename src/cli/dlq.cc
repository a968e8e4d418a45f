// cruncher dlq list | redrive
#include <iostream>

#include "app/queue_backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "dispatch/dispatcher.h"

namespace cruncher::cli {
namespace {

struct DlqOptions {
  app::BackendOptions backend;
  std::string output = "table";
  int limit = 100;
  long long max_messages = 0;
};

int RunList(const DlqOptions& o) {
  auto queues = app::OpenQueueBackend(o.backend);
  if (!queues.ok()) return Fail(queues.status());
  auto messages = (*queues)->ListDeadLetters(o.limit);
  if (!messages.ok()) return Fail(messages.status());
  if (o.output == "json") {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : *messages) {
      nlohmann::json attrs = nlohmann::json::object();
      for (const auto& [k, v] : m.attributes) attrs[k] = v.value;
      out.push_back({{"messageId", m.id},
                     {"body", m.body},
                     {"receiveCount", m.receive_count},
                     {"sentTimestamp", m.sent_at},
                     {"attributes", attrs}});
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  if (messages->empty()) {
    std::cerr << "dead-letter queue " << (*queues)->dead_letter_name()
              << " is empty\n";
    return kExitOk;
  }
  std::vector<std::vector<std::string>> rows = {
      {"MESSAGE-ID", "RECEIVES", "AGE", "REASON", "BODY"}};
  Millis now = SystemClock::Get().NowMillis();
  for (const auto& m : *messages) {
    auto reason = m.attributes.find(dispatch::kErrorAttribute);
    rows.push_back(
        {m.id, std::to_string(m.receive_count), FormatAge(now - m.sent_at),
         // Without Cruncher's reason attribute the message was moved by the
         // queue's redrive, or its copy had no room for the reason (which
         // the poison_message log line then holds): say both, claim neither.
         reason == m.attributes.end() ? "(no cruncher-error: queue redrive, or "
                                        "see the poison_message log)"
                                      : OneLine(reason->second.value, 60),
         OneLine(m.body, 60)});
  }
  std::cout << FormatTable(rows);
  return kExitOk;
}

int RunRedrive(const DlqOptions& o) {
  auto queues = app::OpenQueueBackend(o.backend);
  if (!queues.ok()) return Fail(queues.status());
  auto done = (*queues)->Redrive(o.max_messages);
  if (!done.ok()) return Fail(done.status());
  std::cout << *done << "\n";
  return kExitOk;
}

}  // namespace

void RegisterDlq(CLI::App& app) {
  auto o = std::make_shared<DlqOptions>();
  o->backend.create = false;  // acts on what is there; creates nothing
  auto* dlq =
      app.add_subcommand("dlq", "Inspect and redrive the dead-letter queue");
  dlq->require_subcommand(1);
  auto* list = dlq->add_subcommand(
      "list",
      "List dead-lettered messages with the reason, without receiving them");
  AddBackendOptions(list, o->backend);
  list->add_option("-o,--output", o->output, "table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  list->add_option("--limit", o->limit, "At most this many messages")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  SetCommand(list, [o] { return RunList(*o); });
  auto* redrive = dlq->add_subcommand(
      "redrive",
      "Move dead-lettered messages back to the source queue as new messages");
  AddBackendOptions(redrive, o->backend);
  redrive->add_option("--max", o->max_messages,
                      "At most this many (default: all)");
  SetCommand(redrive, [o] { return RunRedrive(*o); });
}

}  // namespace cruncher::cli
