// cruncher local serve / cruncher watch --local: run the controller and the
// local executor until SIGINT or SIGTERM.

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "app/local_runtime.h"
#include "app/queue_backend.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "cli/shutdown.h"
#include "core/job_name.h"
#include "core/log.h"
#include "dispatch/dispatcher.h"
#include "kube/leader_election.h"
#include "sqs_endpoint/sqs_endpoint.h"

namespace cruncher::cli {
namespace {

struct EndpointFlags {
  bool enabled = true;
  std::string host = "127.0.0.1";
  int port = 9324;
  bool require_auth = false;
  std::string auth_keys_file;
};

struct ServeOptions {
  std::optional<EndpointFlags> endpoint;  // `local serve` only
  app::BackendOptions backend;
  app::RuntimeOptions runtime;
  std::string ack = "on-create";
  std::string template_path;
  int max_receive_count = 5;
  bool verbose = false;
  // watch with the Kubernetes backend: run only while holding this Lease.
  bool leader_elect = false;
  std::string lease_name;  // "" = cruncher-<queue label>
  std::string grace_period = "30s";
  int receivers = 4;  // watch with the Kubernetes backend
};

void AddServeOptions(CLI::App* cmd, ServeOptions& o) {
  AddBackendOptions(cmd, o.backend);
  AddRuntimeOptions(cmd, o.runtime, o.ack);
  // Required, but checked by Run: it may come from the environment or the
  // config file, which CLI11's own check does not see.
  cmd->add_option("-t,--template", o.template_path,
                  "Job template (YAML or JSON manifest with $name "
                  "placeholders; in a cluster, a file mounted from a "
                  "ConfigMap). Required");
  cmd->add_option("--max-receive-count", o.max_receive_count,
                  "The queue's redrive policy: deliveries before a message "
                  "moves to the DLQ")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_flag("-v,--verbose", o.verbose, "Log every Job created");
  cmd->add_option("--grace-period", o.grace_period,
                  "After SIGTERM or SIGINT: creates in progress get two "
                  "thirds of this to finish, and the process exits within "
                  "it (a Pod's terminationGracePeriodSeconds)")
      ->capture_default_str();
  if (!o.endpoint) {
    cmd->add_flag("--leader-elect", o.leader_elect,
                  "Kubernetes backend: dispatch only while holding a Lease in "
                  "the namespace, so that replicas never dispatch at once "
                  "(lease 15s, renew deadline 10s, retry 2s)");
    cmd->add_option("--receivers", o.receivers,
                    "Kubernetes backend: dispatchers receiving and creating "
                    "at once; all but one idle while the queue is shallow "
                    "(a receive returns fewer than 10 messages)")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    // Checked in Run, after every settings layer: alone it would be
    // ignored, and two replicas would both dispatch.
    cmd->add_option("--lease-name", o.lease_name,
                    "The Lease of --leader-elect (default: "
                    "cruncher-<queue name>)");
  }
  if (!o.endpoint) return;
  EndpointFlags& e = *o.endpoint;
  cmd->add_option("--sqs-port", e.port,
                  "Port of the SQS endpoint (0: pick a free one)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--sqs-host", e.host,
                  "Address or host name of the SQS endpoint")
      ->capture_default_str();
  cmd->add_flag("!--no-sqs", e.enabled, "Do not serve the SQS API");
  cmd->add_flag("--require-auth", e.require_auth,
                "Verify SigV4 signatures (keys from --auth-keys-file, else "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)");
  cmd->add_option("--auth-keys-file", e.auth_keys_file,
                  "With --require-auth: lines of ACCESS_KEY_ID:SECRET")
      ->check(CLI::ExistingFile);
}

Result<std::map<std::string, std::string>> AuthKeys(const EndpointFlags& e) {
  std::map<std::string, std::string> keys;
  if (!e.auth_keys_file.empty()) {
    std::ifstream in(e.auth_keys_file);
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
      if (line.empty() || line[0] == '#') continue;
      size_t colon = line.find(':');
      if (colon == std::string::npos || colon == 0 ||
          colon + 1 == line.size()) {
        return InvalidArgument(e.auth_keys_file + " line " + std::to_string(n) +
                               ": expected ACCESS_KEY_ID:SECRET");
      }
      keys[line.substr(0, colon)] = line.substr(colon + 1);
    }
  } else {
    const char* id = std::getenv("AWS_ACCESS_KEY_ID");
    const char* secret = std::getenv("AWS_SECRET_ACCESS_KEY");
    if (id && *id && secret && *secret) keys[id] = secret;
  }
  if (keys.empty()) {
    return InvalidArgument(
        "--require-auth needs keys: --auth-keys-file, or AWS_ACCESS_KEY_ID "
        "and AWS_SECRET_ACCESS_KEY");
  }
  return keys;
}

// The SQS endpoint's configured region: --region, else the AWS CLI's
// environment, else us-east-1. Queues are scoped by region, and this one
// holds the queue that `local serve` dispatches from.
std::string EndpointRegion(const std::string& flag) {
  if (!flag.empty()) return flag;
  for (const char* name : {"AWS_REGION", "AWS_DEFAULT_REGION"}) {
    const char* value = std::getenv(name);
    if (value && *value) return value;
  }
  return "us-east-1";
}

void LogStopped(const dispatch::DispatcherStats& st) {
  Log(LogLevel::kInfo, "stopped",
      {{"receive_calls", st.receive_calls.load()},
       {"received", st.received.load()},
       {"jobs_created", st.jobs_created.load()},
       {"acked", st.acked.load()},
       {"poison", st.poison.load()},
       {"dead_lettered", st.dead_lettered.load()},
       {"backend_failures", st.backend_failures.load()},
       {"handed_back", st.handed_back.load()}});
}

// watch with the Kubernetes backend: the dispatcher creates Jobs through
// the API server; the Job controller runs them. Reads (the unfinished count
// for --max-active, on-success checks) come from an informer cache of this
// queue's Jobs.
int RunKubernetes(ServeOptions& o, app::QueueBackend& queues,
                  const JobTemplate& tmpl, Shutdown& shutdown) {
  app::KubeBackendOptions kube = app::KubeOptions(o.backend);
  kube.cache = true;
  // A create that gives up (POST, GET, POST) still leaves its message
  // invisible, so the batch is held, not received again.
  kube.create_timeout_ms = std::max<long>(
      1'000, o.runtime.dispatcher.visibility_seconds * 1000L / 4);
  kube.queue_label = QueueLabelFor(queues.queue_name());
  auto backend = app::OpenKubeJobBackend(kube);
  if (!backend.ok()) return Fail(backend.status());
  if (Status checked = app::CheckTemplate(**backend, tmpl, o.template_path);
      !checked.ok()) {
    return Fail(checked);
  }
  std::optional<kube::LeaseConfig> lease;
  if (o.leader_elect) {
    lease.emplace();
    lease->namespace_name = (*backend)->namespace_name();
    lease->name =
        o.lease_name.empty() ? LeaseNameFor(queues.queue_name()) : o.lease_name;
    lease->identity = kube::DefaultLeaseIdentity();
    if (Status valid = kube::ValidateLeaseConfig(*lease); !valid.ok()) {
      return Fail(valid.WithContext("--leader-elect"));
    }
  }
  kube::RestClient& rest = (*backend)->rest();
  // One dispatcher per leadership term: a term's on-success bookkeeping
  // (receipt handles the next leader has since been given) dies with it.
  // --receivers dispatchers, one thread each, sharing the room under
  // --max-active and the create rate.
  auto dispatch = [&](const std::stop_token& stop,
                      const std::stop_token& cancel) {
    dispatch::ReceiverGroup group;
    dispatch::DispatcherOptions options = o.runtime.dispatcher;
    options.group = &group;
    options.overlap_acks = true;
    // Under --create-qps the rate is the bound, and one receiver's token
    // bucket keeps it exactly (split, each share's one-message receives
    // would never look deep enough to wake the others).
    const int receivers = options.create_per_second > 0 ? 1 : o.receivers;
    std::vector<std::unique_ptr<dispatch::Dispatcher>> dispatchers;
    for (int i = 0; i < receivers; ++i) {
      options.only_when_deep = i > 0;
      dispatchers.push_back(std::make_unique<dispatch::Dispatcher>(
          queues.queue(), queues.dead_letter(), **backend, tmpl, options));
    }
    {
      std::vector<std::jthread> threads;
      for (auto& d : dispatchers) {
        threads.emplace_back([&d, &stop, &cancel] { d->Run(stop, cancel); });
      }
    }
    dispatch::DispatcherStats total;
    for (const auto& d : dispatchers) total += d->stats();
    LogStopped(total);
  };
  // From here on messages are in flight: a signal stops gracefully.
  shutdown.Running();
  std::jthread dispatch_thread([&](std::stop_token stop) {
    if (!lease) {
      dispatch(stop, shutdown.cancel_token());
      return;
    }
    // A replica that loses the Lease stops dispatching at once and becomes
    // a candidate again.
    while (!stop.stop_requested()) {
      kube::LeaderElector elector(rest, *lease, SystemClock::Get());
      Status ended = elector.Run(
          stop,
          [&](std::stop_token leading) {
            Log(LogLevel::kInfo, "leading",
                {{"lease", lease->name}, {"identity", lease->identity}});
            // A deposed leader's creates end at once (the next leader may
            // already be receiving); a shutdown's get the grace period.
            std::stop_source cancel;
            std::stop_callback on_shutdown(
                shutdown.cancel_token(), [&cancel] { cancel.request_stop(); });
            std::stop_callback on_lost(leading, [&cancel, &stop] {
              if (!stop.stop_requested()) cancel.request_stop();
            });
            dispatch(leading, cancel.get_token());
          },
          [&] {
            Log(LogLevel::kInfo, "stopped_leading",
                {{"lease", lease->name}, {"identity", lease->identity}});
          });
      if (!ended.ok()) {
        Log(LogLevel::kWarn, "leadership_lost",
            {{"lease", lease->name}, {"error", ended.message()}});
      }
    }
  });
  Log(LogLevel::kInfo, "watching",
      {{"queue", queues.queue_name()},
       {"dead_letter_queue", queues.dead_letter() != nullptr
                                 ? nlohmann::json(queues.dead_letter_name())
                                 : nlohmann::json(nullptr)},
       {"template", o.template_path},
       {"ack", o.ack},
       {"backend", "kubernetes"},
       {"namespace", (*backend)->namespace_name()},
       {"selector", (*backend)->selector()},
       {"max_active", o.runtime.dispatcher.max_active},
       {"receivers",
        o.runtime.dispatcher.create_per_second > 0 ? 1 : o.receivers},
       {"lease",
        lease ? nlohmann::json(lease->name) : nlohmann::json(nullptr)}});
  shutdown.Wait();
  dispatch_thread.request_stop();
  dispatch_thread.join();
  return kExitOk;
}

int Run(ServeOptions& o, const CLI::App& cmd) {
  LogSettings(cmd);
  auto grace = ParseDuration(o.grace_period);
  if (!grace.ok() || *grace < 2'000) {
    std::cerr << "error: --grace-period " << o.grace_period
              << ": expected a duration of at least 2s, like 30s\n";
    return kExitUsage;
  }
  // Signals are taken by Shutdown's thread. Blocked first, before any other
  // thread starts (the stores' doorbell watchers, the endpoint, the
  // executor), so that every thread inherits the mask; the executor's
  // children reset it.
  Shutdown shutdown(*grace);

  if (o.template_path.empty()) {
    std::cerr << "error: " << cmd.get_name()
              << " needs a Job template: --template FILE, CRUNCHER_TEMPLATE, "
                 "or \"template: FILE\" in the --config file\n";
    return kExitUsage;
  }
  if (!o.lease_name.empty() && !o.leader_elect) {
    // From any layer (flag, CRUNCHER_LEASE_NAME, --config): alone it would
    // be ignored, and two replicas would both dispatch.
    std::cerr << "error: --lease-name needs --leader-elect\n";
    return kExitUsage;
  }
  if (o.leader_elect && !o.backend.kubernetes()) {
    std::cerr << "error: --leader-elect needs the Kubernetes backend "
                 "(--backend kubernetes, or --queue-url)\n";
    return kExitUsage;
  }
  auto tmpl = JobTemplate::Load(o.template_path);
  if (!tmpl.ok()) return Fail(tmpl.status());
  o.runtime.dispatcher.ack = *dispatch::ParseAckStrategy(o.ack);
  auto queues = app::OpenQueueBackend(
      o.backend,
      {o.max_receive_count, o.runtime.dispatcher.visibility_seconds, true});
  if (!queues.ok()) return Fail(queues.status());
  if ((*queues)->dead_letter() == nullptr) {
    // The dispatcher then leaves poison messages in the queue: each returns
    // after the visibility timeout and fails again, until the queue's
    // retention period deletes it.
    Log(LogLevel::kWarn, "no_dead_letter_queue",
        {{"queue", (*queues)->queue_name()},
         {"effect",
          "poison messages stay in the queue, are retried after each "
          "visibility timeout and are lost when the queue's retention period "
          "ends"},
         {"fix", "give --dlq-url, or set a RedrivePolicy on the queue"}});
  }
  if (o.verbose) SetLogLevel(LogLevel::kDebug);
  if (o.backend.kubernetes()) {
    if (o.endpoint) {
      return Fail(
          "local serve runs Jobs as local processes; use `cruncher watch "
          "--backend kubernetes` to create Kubernetes Jobs");
    }
    return RunKubernetes(o, **queues, *tmpl, shutdown);
  }
  auto jobs = app::OpenJobStore(o.backend);
  if (!jobs.ok()) return Fail(jobs.status());

  std::unique_ptr<sqs::SqsEndpoint> endpoint;
  nlohmann::json endpoint_fields = nullptr;
  if (o.endpoint && o.endpoint->enabled &&
      (*queues)->local_store() != nullptr) {
    sqs::SqsEndpointOptions options;
    options.region = EndpointRegion(o.backend.region);
    // The endpoint binds to an address: "--sqs-host localhost" is resolved
    // here, and the endpoint's URLs then carry the address.
    auto host = ResolveHost(o.endpoint->host);
    if (!host.ok()) return Fail(host.status().WithContext("--sqs-host"));
    options.host = *host;
    options.port = o.endpoint->port;
    options.require_auth = o.endpoint->require_auth;
    if (options.require_auth) {
      auto keys = AuthKeys(*o.endpoint);
      if (!keys.ok()) return Fail(keys.status());
      options.credentials = *keys;
    }
    auto started = sqs::SqsEndpoint::Start(*(*queues)->local_store(), options);
    if (!started.ok()) {
      return Fail(started.status().WithContext("SQS endpoint"),
                  "use --sqs-port to pick another port, or --no-sqs");
    }
    endpoint = std::move(started).value();
    // The region too: a client signing for another one (say, from
    // ~/.aws/config) sees another region's queues, not this one.
    endpoint_fields = {{"endpoint_url", endpoint->url()},
                       {"region", options.region},
                       {"queue_url", endpoint->url() + "/000000000000/" +
                                         (*queues)->queue_name()}};
  }
  // After the endpoint: a port in use must fail the command before any
  // task is started or recovered.
  app::LocalRuntime runtime((*queues)->queue(), (*queues)->dead_letter(),
                            **jobs, o.backend.data_dir, *tmpl, o.runtime);
  shutdown.Running();  // tasks and messages are in flight from here on
  if (Status s = runtime.Start(); !s.ok()) return Fail(s);
  Log(LogLevel::kInfo, "serving",
      {{"data_dir", o.backend.data_dir},
       {"queue", (*queues)->queue_name()},
       {"dead_letter_queue", (*queues)->dead_letter_name()},
       {"template", o.template_path},
       {"ack", o.ack},
       {"slots", o.runtime.executor.slots},
       {"max_active", o.runtime.dispatcher.max_active},
       {"sqs", endpoint_fields}});
  // The signal requests the dispatcher's stop (app::LocalRuntime::Stop), which
  // ends its long poll at once, local or SQS.
  shutdown.Wait();
  if (endpoint) endpoint->Stop();
  runtime.Stop();
  LogStopped(runtime.dispatcher().stats());
  return kExitOk;
}

}  // namespace

void RegisterLocal(CLI::App& app) {
  auto* local = app.add_subcommand("local", "The embedded local mode");
  local->require_subcommand(1);
  auto o = std::make_shared<ServeOptions>();
  o->endpoint.emplace();
  auto* serve = local->add_subcommand(
      "serve",
      "Run the durable local queue with its SQS endpoint, the local process "
      "executor and the dispatcher until interrupted. The SQS endpoint scopes "
      "queues by the region requests are signed for (the dispatcher's queue "
      "is in --region, default AWS_REGION, AWS_DEFAULT_REGION or us-east-1); "
      "it stores queue tags and the Policy and RedriveAllowPolicy attributes "
      "but enforces no policy, and serves standard queues only (no FIFO)");
  AddServeOptions(serve, *o);
  SetCommand(serve, [o, serve] { return Run(*o, *serve); });
}

void RegisterWatch(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* watch = app.add_subcommand(
      "watch",
      "The controller: turn queued messages into Jobs. With the local backend "
      "it also runs the Jobs as local processes");
  AddServeOptions(watch, *o);
  SetCommand(watch, [o, watch] { return Run(*o, *watch); });
}

}  // namespace cruncher::cli
