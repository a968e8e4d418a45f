// cruncher local serve / cruncher watch --local: run the controller and the
// local executor until SIGINT or SIGTERM.
#include <signal.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/common.h"
#include "cli/local_runtime.h"
#include "core/log.h"

namespace cruncher::cli {
namespace {

struct ServeOptions {
  BackendOptions backend;
  RuntimeOptions runtime;
  std::string ack = "on-create";
  std::string template_path;
  int max_receive_count = 5;
  bool verbose = false;
};

void AddServeOptions(CLI::App* cmd, ServeOptions& o) {
  AddBackendOptions(cmd, o.backend);
  AddRuntimeOptions(cmd, o.runtime, o.ack);
  cmd->add_option("-t,--template", o.template_path,
                  "Job template (YAML or JSON manifest with $name placeholders)")
      ->required();
  cmd->add_option("--max-receive-count", o.max_receive_count,
                  "The queue's redrive policy: deliveries before a message "
                  "moves to the DLQ")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_flag("-v,--verbose", o.verbose, "Log every Job created");
}

int Run(ServeOptions& o) {
  auto tmpl = JobTemplate::Load(o.template_path);
  if (!tmpl.ok()) return Fail(tmpl.status());
  o.runtime.dispatcher.ack = *dispatch::ParseAckStrategy(o.ack);
  auto backend = OpenLocalBackend(
      o.backend,
      {o.max_receive_count, o.runtime.dispatcher.visibility_seconds, true});
  if (!backend.ok()) return Fail(backend.status());
  if (o.verbose) SetLogLevel(LogLevel::kDebug);

  // Signals are taken by sigwait below; every thread started from here on
  // inherits the blocked mask (the executor's children reset it).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  LocalRuntime runtime(*backend, *tmpl, o.runtime);
  if (Status s = runtime.Start(); !s.ok()) return Fail(s);
  Log(LogLevel::kInfo, "serving",
      {{"data_dir", o.backend.data_dir},
       {"queue", backend->queue_name},
       {"dead_letter_queue", backend->dlq_name},
       {"template", o.template_path},
       {"ack", o.ack},
       {"slots", o.runtime.executor.slots},
       {"max_active", o.runtime.dispatcher.max_active}});
  int sig = 0;
  sigwait(&signals, &sig);
  Log(LogLevel::kInfo, "stopping", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
  runtime.Stop();
  const auto& st = runtime.dispatcher().stats();
  Log(LogLevel::kInfo, "stopped",
      {{"received", st.received.load()}, {"jobs_created", st.jobs_created.load()},
       {"poison", st.poison.load()}, {"dead_lettered", st.dead_lettered.load()}});
  return kExitOk;
}

}  // namespace

void RegisterLocal(CLI::App& app) {
  auto* local = app.add_subcommand("local", "The embedded local mode");
  local->require_subcommand(1);
  auto o = std::make_shared<ServeOptions>();
  auto* serve = local->add_subcommand(
      "serve",
      "Run the durable local queue, the local process executor and the "
      "dispatcher until interrupted");
  AddServeOptions(serve, *o);
  SetCommand(serve, [o] { return Run(*o); });
}

void RegisterWatch(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* watch = app.add_subcommand(
      "watch",
      "The controller: turn queued messages into Jobs. With the local backend "
      "it also runs the Jobs as local processes");
  AddServeOptions(watch, *o);
  SetCommand(watch, [o] { return Run(*o); });
}

}  // namespace cruncher::cli
