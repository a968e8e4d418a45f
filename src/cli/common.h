// Shared pieces of the `cruncher` subcommands: the backend options every
// command takes, opening the local backend, output helpers, exit codes.
//
// Every subcommand lives in its own file and registers itself on the CLI11
// app with a RegisterX function; its callback returns the process exit
// status: 0 success, 1 failure, 2 bad usage (DESIGN.md §8).
//
// Thread-safety: used from the main thread.
#ifndef CRUNCHER_CLI_COMMON_H_
#define CRUNCHER_CLI_COMMON_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app/kube_backend.h"
#include "core/job.h"
#include "core/job_backend.h"
#include "core/status.h"
#include "local/job_store.h"
#include "local/queue_store.h"

namespace cruncher::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Where the queue and the Jobs are. The queue is local (a data directory)
// unless --queue-url names an SQS queue; Jobs are kept in the data
// directory by the local executor.
struct BackendOptions {
  std::string data_dir;
  std::string queue = "tasks";
  std::string dlq;  // "" = QUEUE-dlq
  bool local = false;
  std::string queue_url;  // SQS
  std::string endpoint_url;
  std::string region;
  std::string profile;
  // Whether opening the local stores may create the data directory and the
  // local queues. Commands that only read or act on what is there (status,
  // jobs, logs, requeue, gc, dlq) clear it: a mistyped --data-dir is then
  // "no such data directory", not a fresh empty one left behind.
  bool create = true;
  // Where Jobs run: "local" (the process executor, Jobs in the data
  // directory) or "kubernetes"; "" = kubernetes with --queue-url, else local.
  std::string backend;
  std::string kubeconfig;
  std::string context;
  std::string kube_namespace;
  double kube_qps = 100;
  int kube_burst = 200;
  std::string dlq_name() const { return dlq.empty() ? queue + "-dlq" : dlq; }
  bool kubernetes() const {
    return backend == "kubernetes" || (backend.empty() && !queue_url.empty());
  }
};

// Adds --data-dir, --queue, --dlq, --local, the SQS options --queue-url,
// --endpoint-url, --region, --profile and the Job backend's --backend,
// --kubeconfig, --context, --namespace, --kube-qps, --kube-burst to `cmd`
// (defaults from CRUNCHER_DATA_DIR, CRUNCHER_QUEUE, CRUNCHER_QUEUE_URL,
// CRUNCHER_BACKEND, else ~/.local/share/cruncher and "tasks").
void AddBackendOptions(CLI::App* cmd, BackendOptions& options);

struct QueueDefaults {
  int max_receive_count = 5;
  int visibility_timeout = 30;
  // Also apply these settings to a queue that exists already (`local serve`
  // owns its queue's configuration; other commands only create it).
  bool apply_to_existing = false;
};
// Opens the local queue store and creates the source queue and its
// dead-letter queue on first use, so that a fresh data directory works with
// every command. Without options.create: NotFound if the data directory or
// a queue does not exist.
Result<std::unique_ptr<local::LocalQueueStore>> OpenLocalQueues(
    const BackendOptions& options, const QueueDefaults& defaults = {});
// Opens the Job store of the data directory (NotFound if the directory does
// not exist and options.create is false).
Result<std::unique_ptr<local::LocalJobStore>> OpenJobStore(
    const BackendOptions& options);
// The Job backend the options name: the local store, or the Kubernetes API
// (read straight from the API: for one-shot commands).
Result<std::unique_ptr<JobBackend>> OpenJobBackend(
    const BackendOptions& options);
// The Kubernetes options as the app layer takes them.
app::KubeBackendOptions KubeOptions(const BackendOptions& options);

// The numeric address of `host` (a name or an address), IPv4 preferred, for
// servers that bind to an address: "localhost" → "127.0.0.1". InvalidArgument
// naming the host if it does not resolve.
Result<std::string> ResolveHost(const std::string& host);

// Registers a subcommand whose callback returns an exit status.
using CommandFn = std::function<int()>;
void SetCommand(CLI::App* cmd, CommandFn fn);
// The status recorded by the subcommand that ran (kExitOk if none).
int CommandExitStatus();

// Prints "error: <message>" (and a hint, if any) to stderr; returns 1.
int Fail(const std::string& message, const std::string& hint = "");
int Fail(const Status& status, const std::string& hint = "");

// "90s", "5m", "2h", "1d", "1h30m", "0" → milliseconds.
Result<Millis> ParseDuration(const std::string& text);

// A left-aligned text table with kubectl's look: upper-case headers, two
// spaces between columns.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows);

// One line: newlines and tabs escaped, cut to `max` characters with "…".
std::string OneLine(const std::string& text, size_t max);

// The `jobs` table: NAME STATUS COMPLETIONS FAILED AGE TASK, and with
// `wide` also CONDITIONS, REASON, MESSAGE-ID and COMMAND.
std::string FormatJobTable(const std::vector<Job>& jobs, bool wide, Millis now);

// The kubectl List shape for `-o json`.
nlohmann::json JobListJson(const std::vector<Job>& jobs);

}  // namespace cruncher::cli

#endif  // CRUNCHER_CLI_COMMON_H_
