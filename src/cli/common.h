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

#include "app/backends.h"
#include "app/local_runtime.h"
#include "core/job.h"
#include "core/status.h"

namespace cruncher::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Adds --config, --data-dir, --queue, --dlq, --local, the SQS options
// --queue-url, --dlq-url, --endpoint-url, --region, --profile and the Job
// backend's --backend, --kubeconfig, --context, --namespace, --kube-qps,
// --kube-burst to `cmd` (defaults ~/.local/share/cruncher and "tasks").
// With --config, every long flag of `cmd` is also read from CRUNCHER_<FLAG>
// and the file (see settings.h and SetCommand).
void AddBackendOptions(CLI::App* cmd, app::BackendOptions& options);

// Adds the executor and dispatcher flags (--slots, --backoff-scale, --ack,
// --max-active, ...) to `cmd`.
void AddRuntimeOptions(CLI::App* cmd, app::RuntimeOptions& options,
                       std::string& ack_text);

// The numeric address of `host` (a name or an address), IPv4 preferred, for
// servers that bind to an address: "localhost" → "127.0.0.1". InvalidArgument
// naming the host if it does not resolve.
Result<std::string> ResolveHost(const std::string& host);

// Registers a subcommand whose callback returns an exit status. For a
// command with --config, the flags its command line left out are first
// filled in from the environment and the file (ApplySettings); a bad value
// there exits 2 before `fn` runs.
using CommandFn = std::function<int()>;
void SetCommand(CLI::App* cmd, CommandFn fn);

// Logs the running command's effective settings, secrets redacted, and
// where each came from: one "config" line, for the long-running commands.
void LogSettings(const CLI::App& cmd);
// The status recorded by the subcommand that ran (kExitOk if none).
int CommandExitStatus();

// Prints "error: <message>" (and a hint, if any) to stderr; returns 1.
int Fail(const std::string& message, const std::string& hint = "");
int Fail(const Status& status, const std::string& hint = "");

// Job names given on the command line: prints "error: invalid Job name ..."
// for the first that is not a valid object name (CheckJobName) and returns
// false; the caller exits with kExitUsage before opening a backend.
bool CheckJobNameArgs(const std::vector<std::string>& names);

// "90s", "5m", "2h", "1d", "1h30m", "0" → milliseconds. InvalidArgument
// for anything else, and for a total over kMaxDurationDays (which also
// keeps every sum and product of the parts within 64 bits).
inline constexpr long long kMaxDurationDays = 100 * 365;
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
