// cruncher demo: the seed's parts 2 and 3, locally, end to end.
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "app/local_runtime.h"
#include "app/queue_backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "dispatch/operations.h"
#include "local/process.h"

namespace cruncher::cli {
namespace {

// The seed's job.yaml, locally runnable: the container's command runs as a
// process (the image is not pulled). Durations are shortened.
constexpr const char* kDemoTemplate = R"yaml(apiVersion: batch/v1
kind: Job
metadata:
  generateName: demo-
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: ping
        image: alpine
        command: ["ping", "-w", "$duration", "$target"]
        resources:
          requests:
            cpu: 100m
            memory: 100M
)yaml";

struct DemoOptions {
  std::string data_dir;
  bool keep = false;
  double backoff_scale = 0.05;
  int timeout_seconds = 120;
};

void Say(const std::string& text) {
  std::cout << "\n### " << text << "\n" << std::flush;
}

void Show(const std::string& command, const std::string& output) {
  std::cout << "$ " << command << "\n" << output << std::flush;
}

// Waits until every Job is finished and at least `count` exist, printing
// the table whenever a state changes.
Result<std::vector<Job>> WaitForFinished(local::LocalJobStore& jobs_store,
                                         size_t count, int timeout_seconds) {
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  std::string last;
  while (std::chrono::steady_clock::now() < deadline) {
    CRUNCHER_ASSIGN_OR_RETURN(auto jobs, jobs_store.List());
    std::string states;
    bool done = jobs.size() >= count;
    for (const auto& j : jobs) {
      states += j.name() + std::string(JobStateName(j.state())) +
                std::to_string(j.failed());
      done = done && j.finished();
    }
    if (states != last && !jobs.empty()) {
      last = states;
      Show("cruncher jobs",
           FormatJobTable(jobs, false, SystemClock::Get().NowMillis()));
    }
    if (done) return jobs;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  return Unavailable("the demo's Jobs did not finish within " +
                     std::to_string(timeout_seconds) + " s");
}

int Run(const DemoOptions& o) {
  const char* path = std::getenv("PATH");
  if (local::ResolveExecutable("ping", path ? path : "/usr/bin:/bin").empty()) {
    return Fail("the demo runs ping, which is not installed",
                "run scripts/setup.sh, or apt-get install iputils-ping");
  }
  std::string data_dir = o.data_dir;
  bool temporary = data_dir.empty();
  if (temporary) {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "cruncher-demo-XXXXXX")
            .string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return Fail("cannot create a temporary data directory");
    }
    data_dir = pattern;
  }
  std::string template_path = data_dir + "/demo-job.yaml";
  std::filesystem::create_directories(data_dir);
  std::ofstream(template_path) << kDemoTemplate;

  std::cout
      << "Cruncher demo: the seed's queue-to-Jobs pattern on this machine.\n"
      << "Data directory: " << data_dir << "\n"
      << "Job template (" << template_path << "):\n\n"
      << kDemoTemplate;
  auto tmpl = JobTemplate::Load(template_path);
  if (!tmpl.ok()) return Fail(tmpl.status());
  app::BackendOptions backend_options;
  backend_options.data_dir = data_dir;
  auto queues = app::OpenQueueBackend(backend_options);
  if (!queues.ok()) return Fail(queues.status());
  auto store = app::OpenJobStore(backend_options);
  if (!store.ok()) return Fail(store.status());
  MessageQueue& queue = (*queues)->queue();
  local::LocalJobStore& jobs_store = **store;

  app::RuntimeOptions runtime_options;
  runtime_options.executor.slots = 4;
  runtime_options.executor.backoff_scale = o.backoff_scale;
  runtime_options.dispatcher.wait_seconds = 1;
  app::LocalRuntime runtime(queue, (*queues)->dead_letter(), jobs_store,
                            data_dir, *tmpl, runtime_options);
  if (Status s = runtime.Start(); !s.ok()) return Fail(s);

  Say("Part 2: two tasks that succeed. Each message becomes a Job; the Job "
      "runs "
      "`ping -w DURATION TARGET` as a local process.");
  for (const char* body : {R"({"target": "127.0.0.1", "duration": "1"})",
                           R"({"target": "127.0.0.2", "duration": "2"})"}) {
    auto id = queue.Send({body, {}});
    if (!id.ok()) return Fail(id.status());
    std::cout << "$ cruncher send '" << body << "'\n" << *id << "\n";
  }
  Say("Part 3: two tasks that fail. ping cannot resolve these names; each Job "
      "retries backoffLimit (2) times with exponential backoff, then fails.");
  for (const char* body :
       {R"({"target": "this.is.invalid", "duration": "1"})",
        R"({"target": "this.is.also.invalid", "duration": "1"})"}) {
    auto id = queue.Send({body, {}});
    if (!id.ok()) return Fail(id.status());
    std::cout << "$ cruncher send '" << body << "'\n" << *id << "\n";
  }
  auto jobs = WaitForFinished(jobs_store, 4, o.timeout_seconds);
  if (!jobs.ok()) return Fail(jobs.status());

  int complete = 0, failed = 0;
  std::string failed_name;
  for (const auto& j : *jobs) {
    if (j.state() == JobState::kComplete) ++complete;
    auto terminal = j.terminal_condition();
    if (j.state() == JobState::kFailed && terminal &&
        terminal->reason == "BackoffLimitExceeded") {
      ++failed;
      failed_name = j.name();
    }
  }
  Say("Every Job keeps its task (the message body, verbatim) and its "
      "conditions:");
  Show("cruncher jobs -o wide",
       FormatJobTable(*jobs, true, SystemClock::Get().NowMillis()));
  auto logs = jobs_store.Logs(failed_name);
  if (logs.ok()) {
    std::string text;
    for (const auto& a : *logs)
      text += "==> " + a.attempt + " <==\n" + a.output;
    Show("cruncher logs " + failed_name, text);
  }
  if (complete != 2 || failed != 2) {
    runtime.Stop();
    return Fail("expected 2 Complete and 2 Failed Jobs, saw " +
                std::to_string(complete) + " Complete and " +
                std::to_string(failed) + " Failed (BackoffLimitExceeded)");
  }

  Say("Requeue the failed Jobs: each task goes back to the queue as a new "
      "message, then its Job is deleted (the seed's Part 3 loop).");
  for (const auto& j : *jobs) {
    if (j.state() != JobState::kFailed) continue;
    auto id = dispatch::RequeueJob(jobs_store, queue, j.name());
    if (!id.ok()) return Fail(id.status());
    std::cout << "$ cruncher requeue " << j.name() << "\njob " << j.name()
              << " requeued as message " << *id << "\n";
  }
  std::cout << "(the targets are still invalid, so the new Jobs fail again: a "
               "Failed Job needs a person to look at it)\n";
  auto again = WaitForFinished(jobs_store, 4, o.timeout_seconds);
  if (!again.ok()) return Fail(again.status());

  Say("Clean up: delete finished Jobs, Failed ones included.");
  auto deleted = dispatch::CollectGarbage(jobs_store, {0, true},
                                          SystemClock::Get().NowMillis());
  if (!deleted.ok()) return Fail(deleted.status());
  std::cout << "$ cruncher gc --include-failed\n"
            << deleted->size() << " finished Jobs deleted\n";
  auto depth = queue.Depth();
  auto left = jobs_store.List();
  runtime.Stop();
  if (depth.ok()) {
    std::cout << "$ cruncher status\nqueue " << queue.name() << ": "
              << depth->visible << " visible, " << depth->in_flight
              << " in flight; " << (left.ok() ? left->size() : 0) << " Jobs\n";
  }
  Say("What this showed: messages became Jobs (one per message, named "
      "deterministically, so a redelivered message never makes a duplicate); "
      "Jobs ran and retried with backoff; failed Jobs stayed Failed with their "
      "task, so nothing was lost and they could be requeued; every state "
      "change was stored durably in " +
      data_dir + "/cruncher.db.");
  if (temporary && !o.keep) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir, ec);
  }
  std::cout << "\nDemo complete.\n";
  return kExitOk;
}

}  // namespace

void RegisterDemo(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto* cmd = app.add_subcommand(
      "demo",
      "Run the seed's demo locally, end to end, and explain what it shows");
  cmd->add_option("--data-dir", o->data_dir,
                  "Use this data directory (default: a temporary one)");
  cmd->add_flag("--keep", o->keep, "Keep the temporary data directory");
  cmd->add_option("--backoff-scale", o->backoff_scale,
                  "Multiply the retry backoff (10s, 20s, ...) by this")
      ->capture_default_str();
  cmd->add_option(
         "--timeout", o->timeout_seconds,
         "Give up if the Jobs have not finished after this many seconds")
      ->capture_default_str();
  SetCommand(cmd, [o] { return Run(*o); });
}

}  // namespace cruncher::cli
