#include "cli/common.h"

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "cli/settings.h"
#include "core/environment.h"
#include "core/job_name.h"
#include "core/log.h"

namespace cruncher::cli {
namespace {

int g_exit_status = kExitOk;
// Where the running command's settings came from (ApplySettings).
SettingSources g_setting_sources;

// CLI::Range lets "nan" through (every comparison with NaN is false), and
// "inf" would pass a range whose bound is infinite.
const CLI::Validator kFiniteNumber(
    [](std::string& text) -> std::string {
      char* end = nullptr;
      const double value = std::strtod(text.c_str(), &end);
      if (end == text.c_str() || *end != '\0' || !std::isfinite(value)) {
        return "not a finite number: " + text;
      }
      return "";
    },
    "FINITE");

// CRUNCHER_DATA_DIR is the --data-dir flag's environment layer
// (ApplySettings); this is the default under it.
std::string DefaultDataDir() {
  if (const char* xdg = std::getenv("XDG_DATA_HOME"); xdg && *xdg) {
    return std::string(xdg) + "/cruncher";
  }
  if (const char* home = std::getenv("HOME"); home && *home) {
    return std::string(home) + "/.local/share/cruncher";
  }
  return ".cruncher";
}

}  // namespace

void AddBackendOptions(CLI::App* cmd, app::BackendOptions& options) {
  options.data_dir = DefaultDataDir();
  cmd->add_option("--config",
                  "YAML file of settings, keys named after the long flags "
                  "(queue-url: URL, max-active: 40, local: true); env "
                  "CRUNCHER_CONFIG. Precedence: flag, then env "
                  "CRUNCHER_<FLAG> (--queue-url: CRUNCHER_QUEUE_URL), then "
                  "this file, then the default")
      ->type_name("FILE")
      ->configurable(false);
  cmd->add_option("--data-dir", options.data_dir,
                  "Directory of the local queue and of the Jobs "
                  "(env CRUNCHER_DATA_DIR)")
      ->capture_default_str();
  cmd->add_option("--queue", options.queue,
                  "Local queue name (env CRUNCHER_QUEUE)")
      ->capture_default_str();
  cmd->add_option("--dlq", options.dlq,
                  "Local dead-letter queue name (default: QUEUE-dlq)");
  auto* local = cmd->add_flag("--local", options.local,
                              "Use the local queue (the default without "
                              "--queue-url)");
  auto* url = cmd->add_option(
      "--queue-url", options.queue_url,
      "Use this SQS queue instead of the local one (env CRUNCHER_QUEUE_URL); "
      "credentials and region as the AWS CLI finds them");
  local->excludes(url);
  cmd->add_option("--dlq-url", options.dlq_url,
                  "With --queue-url: the SQS queue poison messages go to and "
                  "that `dlq` lists and redrives (default: the queue's "
                  "RedrivePolicy target)");
  cmd->add_option("--endpoint-url", options.endpoint_url,
                  "SQS endpoint (default: from the queue URL, "
                  "AWS_ENDPOINT_URL_SQS or AWS_ENDPOINT_URL)");
  cmd->add_option("--region", options.region,
                  "AWS region (default: as the AWS CLI)");
  cmd->add_option("--profile", options.profile,
                  "AWS profile (default: AWS_PROFILE)");
  cmd->add_option("--backend", options.backend,
                  "Where Jobs run: local (processes on this machine, Jobs in "
                  "the data directory) or kubernetes (env CRUNCHER_BACKEND; "
                  "default: kubernetes with --queue-url, else local)")
      ->check(CLI::IsMember({"local", "kubernetes"}));
  cmd->add_option("--kubeconfig", options.kubeconfig,
                  "Kubernetes: kubeconfig file (default: KUBECONFIG, "
                  "~/.kube/config, else in-cluster)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--context", options.context,
                  "Kubernetes: kubeconfig context (default: current-context)");
  cmd->add_option("-n,--namespace", options.kube_namespace,
                  "Kubernetes: namespace of the Jobs (default: the "
                  "context's, else default)");
  cmd->add_option("--kube-qps", options.kube_qps,
                  "Kubernetes: client-side requests per second")
      ->check(kFiniteNumber)
      ->check(CLI::Range(0.1, 10000.0))
      ->capture_default_str();
  cmd->add_option("--kube-burst", options.kube_burst,
                  "Kubernetes: client-side burst of requests")
      ->check(CLI::Range(1, 20000))
      ->capture_default_str();
}

void AddRuntimeOptions(CLI::App* cmd, app::RuntimeOptions& o,
                       std::string& ack_text) {
  o.executor.slots =
      static_cast<int>(std::max(1u, std::thread::hardware_concurrency()) * 4);
  cmd->add_option("--slots", o.executor.slots,
                  "Attempts that run at once (stands in for cluster capacity)")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--backoff-scale", o.executor.backoff_scale,
                  "Multiply the retry backoff (10s, 20s, ... 6m) by this; "
                  "e.g. 0.01 for tests")
      ->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  cmd->add_option("--ack", ack_text,
                  "When to delete a message: on-create (once its Job exists) "
                  "or on-success (once its Job completes; failures go to the "
                  "DLQ through the redrive policy)")
      ->check(CLI::IsMember({"on-create", "on-success"}))
      ->capture_default_str();
  cmd->add_option(
         "--max-active", o.dispatcher.max_active,
         "Stop receiving while this many Jobs are unfinished (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--create-qps", o.dispatcher.create_per_second,
                  "At most this many Jobs created per second (0: no limit)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--visibility-timeout", o.dispatcher.visibility_seconds,
                  "The queue's visibility timeout; with on-success, how long a "
                  "message stays in flight between extensions")
      ->check(CLI::Range(2, 43200))
      ->capture_default_str();
}

Result<std::string> ResolveHost(const std::string& host) {
  for (int family : {AF_INET, AF_INET6}) {
    addrinfo hints{};
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (rc != 0) {
      // No address of this family; the other may have one.
      if (family == AF_INET) continue;
      return InvalidArgument("cannot resolve host \"" + host +
                             "\": " + ::gai_strerror(rc));
    }
    char address[NI_MAXHOST];
    rc = ::getnameinfo(found->ai_addr, found->ai_addrlen, address,
                       sizeof(address), nullptr, 0, NI_NUMERICHOST);
    ::freeaddrinfo(found);
    if (rc != 0) {
      return InvalidArgument("cannot resolve host \"" + host +
                             "\": " + ::gai_strerror(rc));
    }
    return std::string(address);
  }
  return InvalidArgument("cannot resolve host \"" + host + "\"");
}

void SetCommand(CLI::App* cmd, CommandFn fn) {
  cmd->callback([cmd, fn = std::move(fn)] {
    // Commands with --config take each flag from the environment and the
    // file too; CLI11 has parsed the command line by now.
    if (cmd->get_option_no_throw("--config") != nullptr) {
      auto sources = ApplySettings(*cmd, ProcessEnvironment());
      if (!sources.ok()) {
        std::cerr << "error: " << sources.status().message()
                  << "\nRun with --help for usage.\n";
        g_exit_status = kExitUsage;
        return;
      }
      g_setting_sources = std::move(sources).value();
    }
    g_exit_status = fn();
  });
}

void LogSettings(const CLI::App& cmd) {
  Log(LogLevel::kInfo, "config",
      {{"command",
        cmd.get_parent() != nullptr && cmd.get_parent()->get_parent() != nullptr
            ? cmd.get_parent()->get_name() + " " + cmd.get_name()
            : cmd.get_name()},
       {"settings", RedactSecrets(EffectiveSettings(cmd))},
       {"sources", g_setting_sources}});
}

int CommandExitStatus() { return g_exit_status; }

int Fail(const std::string& message, const std::string& hint) {
  std::cerr << "error: " << message << "\n";
  if (!hint.empty()) std::cerr << "hint: " << hint << "\n";
  return kExitFailure;
}

int Fail(const Status& status, const std::string& hint) {
  return Fail(status.message(), hint);
}

bool CheckJobNameArgs(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (Status valid = CheckJobName(name); !valid.ok()) {
      std::cerr << "error: " << valid.message() << "\n";
      return false;
    }
  }
  return true;
}

Result<Millis> ParseDuration(const std::string& text) {
  auto invalid = [&text](const std::string& why) {
    return InvalidArgument("invalid duration \"" + text + "\"" + why +
                           " (use e.g. 90s, 5m, 2h, 1d, 1h30m)");
  };
  if (text == "0") return Millis{0};
  if (text.empty()) return invalid("");
  // Checked against the bound at every step: an age past it would wrap
  // negative and match every Job (gc would delete them all).
  const std::string too_long =
      ": longer than " + std::to_string(kMaxDurationDays) + " days";
  constexpr Millis kMax = kMaxDurationDays * 86'400'000LL;
  Millis total = 0;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return invalid("");
    Millis n = 0;
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]));
         ++i) {
      n = n * 10 + (text[i] - '0');
      if (n > kMax) return invalid(too_long);
    }
    Millis scale = 0;
    for (const auto& [unit, unit_ms] :
         {std::pair<std::string_view, Millis>{"ms", 1},
          {"s", 1000},
          {"m", 60'000},
          {"h", 3'600'000},
          {"d", 86'400'000}}) {
      if (std::string_view(text).substr(i, unit.size()) == unit) {
        scale = unit_ms;
        i += unit.size();
        break;
      }
    }
    if (scale == 0) return invalid("");
    if (n > (kMax - total) / scale) return invalid(too_long);
    total += n * scale;
  }
  return total;
}

std::string FormatTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) {
      widths[i] = std::max(widths[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size())
        line += std::string(widths[i] - row[i].size() + 3, ' ');
    }
    out += line + "\n";
  }
  return out;
}

std::string OneLine(const std::string& text, size_t max) {
  std::string out;
  for (char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else
      out.push_back(c);
  }
  if (out.size() > max) out = out.substr(0, max - 3) + "...";
  return out;
}

std::string FormatJobTable(const std::vector<Job>& jobs, bool wide,
                           Millis now) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"NAME",   "STATUS", "COMPLETIONS",
                                     "FAILED", "AGE",    "TASK"};
  if (wide) {
    header.insert(header.end(),
                  {"CONDITIONS", "REASON", "MESSAGE-ID", "COMMAND"});
  }
  rows.push_back(header);
  for (const auto& job : jobs) {
    std::vector<std::string> row = {job.name(),
                                    std::string(JobStateName(job.state())),
                                    std::to_string(job.succeeded()) + "/1",
                                    std::to_string(job.failed()),
                                    FormatAge(now - job.created_at()),
                                    OneLine(job.task(), wide ? 200 : 60)};
    if (wide) {
      auto terminal = job.terminal_condition();
      std::string command;
      const nlohmann::json::json_pointer container(
          "/spec/template/spec/containers/0");
      if (job.json().contains(container)) {
        const auto& c = job.json()[container];
        for (const char* key : {"command", "args"}) {
          if (!c.contains(key) || !c[key].is_array()) continue;
          for (const auto& w : c[key]) {
            if (!command.empty()) command += " ";
            command += w.is_string() ? w.get<std::string>() : w.dump();
          }
        }
      }
      std::string conditions;
      for (const auto& c : job.conditions()) {
        if (c.status != "True") continue;
        conditions += (conditions.empty() ? "" : ",") + c.type;
      }
      row.insert(
          row.end(),
          {conditions.empty() ? "-" : conditions,
           terminal && !terminal->reason.empty() ? terminal->reason : "-",
           job.annotation(kMessageIdAnnotation), OneLine(command, 80)});
    }
    rows.push_back(std::move(row));
  }
  return FormatTable(rows);
}

nlohmann::json JobListJson(const std::vector<Job>& jobs) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& j : jobs) items.push_back(j.json());
  return {{"apiVersion", "v1"}, {"kind", "List"}, {"items", items}};
}

}  // namespace cruncher::cli
