// The Kubernetes Job client against the real test cluster
// (tools/testcluster): RestClient, JobClient, JobInformer and KubeJobBackend
// as `cruncher watch` uses them, with the API server's own answers: 409
// AlreadyExists and the dispatcher's ownership check, a paged list, a watch
// that sees kwok finish and fail Jobs, a 410 after the API server's watch
// cache moved on, an API server outage, and a ServiceAccount with exactly
// the permissions Cruncher needs.
//
// Run through tools/testcluster/with-cluster.sh, which exports KUBECONFIG
// (admin) and TESTCLUSTER_DIR (ports, pids, component.sh's recorded command
// lines). Each test works in a namespace of its own. The last two stop and
// start the API server (and wait for it to be ready before they end); they
// come last because the cluster's own controllers take a minute or more to
// resume after an outage (client-go's reflectors back off), so a Job made
// just after one would wait that long for its pod.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "app/kube_backend.h"
#include "core/clock.h"
#include "core/encoding.h"
#include "core/job.h"
#include "core/template.h"
#include "dispatch/dispatcher.h"
#include "fakes/fake_message_queue.h"
#include "kube/job_client.h"
#include "kube/job_informer.h"
#include "kube/kube_job_backend.h"
#include "kube/kubeconfig.h"
#include "kube/rest_client.h"
#include "net/http_transport.h"

namespace cruncher::kube {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;
using SteadyClock = std::chrono::steady_clock;

// The seed's job.yaml (its Part 2 messages fill $target and $duration),
// with the test cluster's pod annotation for how long kwok lets it run.
constexpr const char* kSeedTemplate = R"yaml(apiVersion: batch/v1
kind: Job
metadata:
  generateName: demo-
spec:
  backoffLimit: 2
  template:
    metadata:
      annotations:
        cruncher.dev/run-seconds: "1"
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

// The same Job, failing: kwok fails pods labelled cruncher.dev/fail, and
// backoffLimit 0 makes the first failure the Job's.
constexpr const char* kFailingTemplate = R"yaml(apiVersion: batch/v1
kind: Job
metadata:
  generateName: fail-
spec:
  backoffLimit: 0
  template:
    metadata:
      labels:
        cruncher.dev/fail: "yes"
      annotations:
        cruncher.dev/run-seconds: "1"
        cruncher.dev/exit-code: "3"
    spec:
      restartPolicy: Never
      containers:
      - name: ping
        image: alpine
        command: ["ping", "-w", "$duration", "$target"]
)yaml";

constexpr const char* kSelector = "app.kubernetes.io/managed-by=cruncher";

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a shell command; its output is collected, never shown.
CommandResult Sh(const std::string& command) {
  CommandResult r;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    r.output.append(buf.data(), n);
  }
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// Polls `done` every 100 ms until it holds or `timeout` passes. The
// condition, not the time, decides: a slow machine only waits longer.
bool WaitFor(const std::function<bool()>& done,
             std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (true) {
    if (done()) return true;
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// A transport that forwards to libcurl and records each request's method
// and path (to tell how a list was paged).
class RecordingTransport final : public net::HttpTransport {
 public:
  net::HttpOutcome Send(const net::HttpRequest& request) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(request.method + " " + request.url);
    }
    net::HttpOutcome out = real_.Send(request);
    if (after_) after_(request, out);
    return out;
  }
  std::vector<std::string> requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  // Runs on the caller's thread after each exchange, before the caller
  // sees the response: a test acts between two pages of a list.
  void set_after(
      std::function<void(const net::HttpRequest&, const net::HttpOutcome&)>
          after) {
    after_ = std::move(after);
  }

 private:
  net::CurlHttpTransport real_;
  mutable std::mutex mu_;
  std::vector<std::string> requests_;
  std::function<void(const net::HttpRequest&, const net::HttpOutcome&)> after_;
};

// A request to etcd's HTTP gateway (the JSON face of its gRPC API): the
// parsed answer, or null after a failed assertion.
nlohmann::json Etcd(const std::string& port, const std::string& method,
                    const nlohmann::json& body) {
  net::CurlHttpTransport transport;
  net::HttpRequest request;
  request.url = "http://127.0.0.1:" + port + "/v3/" + method;
  request.body = body.dump();
  net::HttpOutcome out = transport.Send(request);
  EXPECT_TRUE(out.status.ok()) << out.status.ToString();
  EXPECT_EQ(out.response.status, 200) << out.response.body;
  auto answer = nlohmann::json::parse(out.response.body, nullptr, false);
  return answer.is_discarded() ? nlohmann::json() : answer;
}

// Adds a key to etcd directly, which moves its revision on without the API
// server; returns the new revision (0 on failure).
long long BumpEtcdRevision(const std::string& port) {
  nlohmann::json put = Etcd(port, "kv/put",
                            {{"key", Base64Encode("/cruncher-test/bump")},
                             {"value", Base64Encode("x")}});
  // The gateway writes int64 as a JSON string.
  auto header = put.find("header");
  if (header == put.end() || !header->is_object()) return 0;
  auto revision = header->find("revision");
  if (revision == header->end() || !revision->is_string()) return 0;
  return std::stoll(revision->get<std::string>());
}

class JobsClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tc = std::getenv("TESTCLUSTER_DIR");
    const char* kc = std::getenv("KUBECONFIG");
    ASSERT_TRUE(tc != nullptr && kc != nullptr)
        << "run through tools/testcluster/with-cluster.sh";
    cluster_dir_ = tc;
    kubeconfig_ = kc;
    // A namespace per test: tests never see each other's Jobs.
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string base = Lower(info->name());
    if (base.size() > 40) base.resize(40);
    ns_ = "jt-" + base + "-" + std::to_string(std::random_device{}() % 100000);
    ASSERT_EQ(Kubectl("create namespace " + ns_).exit_code, 0);
    // The Job controller's pods need the namespace's default ServiceAccount.
    ASSERT_TRUE(WaitFor(
        [&] {
          return Kubectl("-n " + ns_ + " get serviceaccount default")
                     .exit_code == 0;
        },
        std::chrono::seconds(60)))
        << "no default ServiceAccount in " << ns_;
    auto seed = JobTemplate::Parse(kSeedTemplate, "seed job.yaml");
    ASSERT_TRUE(seed.ok()) << seed.status().ToString();
    seed_ = std::move(*seed);
  }

  CommandResult Kubectl(const std::string& args) const {
    return Sh("kubectl --kubeconfig=" + ShellQuote(kubeconfig_) +
              " --request-timeout=20s " + args);
  }

  // kubectl apply of a YAML or JSON document.
  void Apply(const std::string& manifest) const {
    const std::string path =
        cluster_dir_ + "/apply-" + std::to_string(++applies_) + ".yaml";
    std::ofstream(path) << manifest;
    CommandResult r = Kubectl("apply -f " + ShellQuote(path));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }

  CommandResult Component(const std::string& action,
                          const std::string& name) const {
    return Sh(CRUNCHER_SOURCE_DIR "/tools/testcluster/component.sh " +
              ShellQuote(cluster_dir_) + " " + action + " " + name);
  }

  std::string Port(const std::string& name) const {
    std::ifstream in(cluster_dir_ + "/ports");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(name + "=", 0) == 0) return line.substr(name.size() + 1);
    }
    return "";
  }

  // Opens the backend as `watch` does, on this test's namespace.
  std::unique_ptr<KubeJobBackend> Open(bool cache, const std::string& queue,
                                       const std::string& kubeconfig = "") {
    app::KubeBackendOptions options;
    options.kubeconfig = kubeconfig.empty() ? kubeconfig_ : kubeconfig;
    options.namespace_name = ns_;
    options.queue_label = queue;
    options.cache = cache;
    auto backend = app::OpenKubeJobBackend(options);
    EXPECT_TRUE(backend.ok()) << backend.status().ToString();
    return backend.ok() ? std::move(*backend) : nullptr;
  }

  // A RestClient of our own on the admin kubeconfig, over `transport`.
  std::unique_ptr<RestClient> Rest(
      std::shared_ptr<net::HttpTransport> transport =
          std::make_shared<net::CurlHttpTransport>()) {
    KubeConfigOptions options;
    options.kubeconfig = kubeconfig_;
    options.namespace_override = ns_;
    options.env = ProcessEnvironment();
    auto config = LoadClusterConfig(options);
    EXPECT_TRUE(config.ok()) << config.status().ToString();
    if (!config.ok()) return nullptr;
    auto credentials =
        NewCredentialProvider(*config, nullptr, SystemClock::Get());
    EXPECT_TRUE(credentials.ok()) << credentials.status().ToString();
    if (!credentials.ok()) return nullptr;
    auto rest = RestClient::Create(*config, *credentials, std::move(transport),
                                   SystemClock::Get());
    EXPECT_TRUE(rest.ok()) << rest.status().ToString();
    return rest.ok() ? std::move(*rest) : nullptr;
  }

  // The Job Cruncher renders for message `id` of `queue`, as the dispatcher
  // does (deterministic name, labels, annotations).
  nlohmann::json Manifest(const JobTemplate& tmpl, const std::string& queue,
                          const std::string& id) const {
    Message m;
    m.id = id;
    m.body = R"({"target": "127.0.0.1", "duration": "10"})";
    m.receive_count = 1;
    auto manifest = tmpl.RenderForMessage(m, queue);
    EXPECT_TRUE(manifest.ok()) << manifest.status().ToString();
    return manifest.ok() ? std::move(*manifest) : nlohmann::json();
  }

  static std::string NameOf(const nlohmann::json& manifest) {
    return manifest.at("metadata").at("name").get<std::string>();
  }

  // A plain Job of `name`, without Cruncher's label (someone else's).
  void CreateForeignJob(const std::string& name) const {
    Apply(R"({"apiVersion": "batch/v1", "kind": "Job",
      "metadata": {"name": ")" +
          name + R"(", "namespace": ")" + ns_ + R"("},
      "spec": {"backoffLimit": 0, "template": {"spec": {
        "restartPolicy": "Never",
        "containers": [{"name": "c", "image": "busybox"}]}}}})");
  }

  // The names of our Jobs in the namespace, as kubectl sees them.
  std::vector<std::string> JobNamesByKubectl() const {
    CommandResult r = Kubectl("-n " + ns_ + " get jobs -l " + kSelector +
                              " -o jsonpath='{.items[*].metadata.name}'");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::vector<std::string> names;
    std::istringstream in(r.output);
    for (std::string name; in >> name;) names.push_back(name);
    return names;
  }

  std::string cluster_dir_, kubeconfig_, ns_;
  JobTemplate seed_;
  mutable int applies_ = 0;
};

// A second create of the same manifest meets 409 AlreadyExists; the
// backend says so and Get shows the Job is ours for this message. A Job of
// the same name that is not ours is poison for the dispatcher, whose reason
// names the Job and says it is not Cruncher's.
TEST_F(JobsClusterTest, AlreadyExistsAndOwnership) {
  auto backend = Open(/*cache=*/false, "tasks");
  ASSERT_NE(backend, nullptr);
  const nlohmann::json manifest = Manifest(seed_, "tasks", "m-1");
  const std::string name = NameOf(manifest);
  ASSERT_THAT(name, ::testing::StartsWith("demo-"));
  ASSERT_TRUE(backend->Create(manifest).ok());

  // The API server's own answer, through the typed client.
  auto rest = Rest();
  ASSERT_NE(rest, nullptr);
  JobClient jobs(*rest, ns_);
  auto again = jobs.Create(manifest);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.status().code(), StatusCode::kAlreadyExists);
  EXPECT_THAT(again.status().message(),
              AllOf(HasSubstr("409 AlreadyExists"), HasSubstr(name)));

  Status created = backend->Create(manifest);
  EXPECT_EQ(created.code(), StatusCode::kAlreadyExists) << created.ToString();
  auto job = backend->Get(name);
  ASSERT_TRUE(job.ok()) << job.status().ToString();
  EXPECT_TRUE(job->managed_by_cruncher());
  EXPECT_EQ(job->annotation(kMessageIdAnnotation), "m-1");
  EXPECT_EQ(job->label(kQueueLabel), "tasks");
  EXPECT_EQ(job->task(), R"({"target": "127.0.0.1", "duration": "10"})");
  EXPECT_EQ(JobNamesByKubectl(), std::vector<std::string>{name});

  // Through the dispatcher, with the cache `watch` runs: a redelivered
  // message whose Job exists is acked without a second Job; a message whose
  // Job name is taken by someone else's Job goes to the DLQ with a reason.
  auto cached = Open(/*cache=*/true, "tasks");
  ASSERT_NE(cached, nullptr);
  SystemClock& clock = SystemClock::Get();
  cruncher::testing::FakeMessageQueue source("tasks", clock);
  cruncher::testing::FakeMessageQueue dlq("tasks-dlq", clock);
  const std::string redelivered =
      source.Add(R"({"target": "10.0.0.1", "duration": "5"})");
  const std::string foreign =
      source.Add(R"({"target": "10.0.0.2", "duration": "5"})");
  Message m1;
  m1.id = redelivered;
  m1.body = R"({"target": "10.0.0.1", "duration": "5"})";
  Message m2;
  m2.id = foreign;
  m2.body = R"({"target": "10.0.0.2", "duration": "5"})";
  auto first = seed_.RenderForMessage(m1, "tasks");
  auto taken = seed_.RenderForMessage(m2, "tasks");
  ASSERT_TRUE(first.ok() && taken.ok());
  ASSERT_TRUE(cached->Create(*first).ok());  // its ack was lost
  const std::string foreign_name = NameOf(*taken);
  CreateForeignJob(foreign_name);

  dispatch::DispatcherOptions options;
  options.wait_seconds = 0;
  dispatch::Dispatcher dispatcher(source, &dlq, *cached, seed_, options, clock);
  auto received = dispatcher.RunOnce();
  ASSERT_TRUE(received.ok()) << received.status().ToString();
  EXPECT_EQ(*received, 2);
  const auto& stats = dispatcher.stats();
  EXPECT_EQ(stats.jobs_existing, 1);
  EXPECT_EQ(stats.jobs_created, 0);
  EXPECT_EQ(stats.acked, 1);
  EXPECT_EQ(stats.poison, 1);
  EXPECT_EQ(stats.dead_lettered, 1);
  EXPECT_EQ(source.size(), 0u);
  ASSERT_EQ(dlq.size(), 1u);
  const MessageAttributes attrs = dlq.messages()[0].message.attributes;
  ASSERT_TRUE(attrs.contains(dispatch::kErrorAttribute));
  EXPECT_THAT(attrs.at(dispatch::kErrorAttribute).value,
              AllOf(HasSubstr("Job named " + foreign_name),
                    HasSubstr("not created by Cruncher")));
  EXPECT_EQ(attrs.at(dispatch::kSourceMessageIdAttribute).value, foreign);
  // Someone else's Job is left as it was.
  CommandResult labels = Kubectl("-n " + ns_ + " get job " + foreign_name +
                                 " -o jsonpath='{.metadata.labels}'");
  ASSERT_EQ(labels.exit_code, 0) << labels.output;
  EXPECT_THAT(labels.output, ::testing::Not(HasSubstr("cruncher")));
  EXPECT_THAT(JobNamesByKubectl(),
              UnorderedElementsAreArray({name, NameOf(*first)}));
}

// Seven Jobs listed three per page: three requests (two with a continue
// token), seven Jobs, none of someone else's.
TEST_F(JobsClusterTest, ListAcrossPages) {
  auto backend = Open(/*cache=*/false, "pages");
  ASSERT_NE(backend, nullptr);
  std::vector<nlohmann::json> manifests;
  std::vector<std::string> names;
  for (int i = 0; i < 7; ++i) {
    manifests.push_back(Manifest(seed_, "pages", "p-" + std::to_string(i)));
    names.push_back(NameOf(manifests.back()));
  }
  for (const Status& s : backend->CreateBatch(manifests)) {
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  CreateForeignJob("not-ours");

  auto transport = std::make_shared<RecordingTransport>();
  auto rest = Rest(transport);
  ASSERT_NE(rest, nullptr);
  JobClient jobs(*rest, ns_);
  auto list = jobs.List(kSelector, 3);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::vector<std::string> listed;
  for (const Job& job : list->jobs) listed.push_back(job.name());
  EXPECT_THAT(listed, UnorderedElementsAreArray(names));
  EXPECT_FALSE(list->resource_version.empty());
  const std::vector<std::string> requests = transport->requests();
  ASSERT_EQ(requests.size(), 3u) << ::testing::PrintToString(requests);
  EXPECT_THAT(requests[0], AllOf(HasSubstr("limit=3"),
                                 ::testing::Not(HasSubstr("continue="))));
  EXPECT_THAT(requests[1], HasSubstr("continue="));
  EXPECT_THAT(requests[2], HasSubstr("continue="));

  // The backend's one-shot list: the same seven, oldest first.
  auto all = backend->List();
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  ASSERT_EQ(all->size(), 7u);
  for (std::size_t i = 1; i < all->size(); ++i) {
    EXPECT_LE((*all)[i - 1].created_at(), (*all)[i].created_at());
  }
}

// The informer sees kwok complete one Job and fail another; a Job the
// backend just created or deleted is in (or out of) the cache at once.
TEST_F(JobsClusterTest, InformerFollowsJobsToCompleteAndFailed) {
  auto failing = JobTemplate::Parse(kFailingTemplate, "failing job.yaml");
  ASSERT_TRUE(failing.ok()) << failing.status().ToString();
  auto backend = Open(/*cache=*/true, "watch");
  ASSERT_NE(backend, nullptr);
  const JobInformer* informer = backend->informer();
  ASSERT_NE(informer, nullptr);
  ASSERT_TRUE(
      WaitFor([&] { return informer->HasSynced(); }, std::chrono::seconds(30)));
  EXPECT_EQ(informer->size(), 0u);

  const nlohmann::json ok = Manifest(seed_, "watch", "ok-1");
  const nlohmann::json bad = Manifest(*failing, "watch", "fail-1");
  ASSERT_TRUE(backend->Create(ok).ok());
  // Write-through: in the cache before any watch event could bring it.
  ASSERT_TRUE(informer->Get(NameOf(ok)).has_value());
  ASSERT_TRUE(backend->Create(bad).ok());
  ASSERT_TRUE(informer->Get(NameOf(bad)).has_value());
  auto got = backend->Get(NameOf(bad));
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_FALSE(got->finished());

  auto state_of = [&](const nlohmann::json& manifest) {
    std::optional<Job> job = informer->Get(NameOf(manifest));
    return job ? std::optional<JobState>(job->state()) : std::nullopt;
  };
  EXPECT_TRUE(WaitFor(
      [&] {
        return state_of(ok) == JobState::kComplete &&
               state_of(bad) == JobState::kFailed;
      },
      std::chrono::seconds(90)))
      << "ok: " << (informer->Get(NameOf(ok)) ? "seen" : "missing")
      << ", failing: " << (informer->Get(NameOf(bad)) ? "seen" : "missing");
  std::optional<Job> failed = informer->Get(NameOf(bad));
  ASSERT_TRUE(failed.has_value());
  ASSERT_TRUE(failed->terminal_condition().has_value());
  EXPECT_EQ(failed->terminal_condition()->type, "Failed");
  EXPECT_EQ(failed->terminal_condition()->reason, "BackoffLimitExceeded");
  EXPECT_EQ(failed->failed(), 1);
  std::optional<Job> done = informer->Get(NameOf(ok));
  ASSERT_TRUE(done.has_value());
  EXPECT_EQ(done->succeeded(), 1);
  // The cache keeps no spec and no task, but the message id for on-success.
  EXPECT_EQ(done->annotation(kMessageIdAnnotation), "ok-1");
  EXPECT_EQ(done->task(), "");
  auto unfinished = backend->CountUnfinished();
  ASSERT_TRUE(unfinished.ok());
  EXPECT_EQ(*unfinished, 0);
  auto listed = backend->List();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->size(), 2u);
  EXPECT_EQ(informer->lists(), 1u);  // one list, then only the watch

  // Deleted: out of the cache at once, and the watch's DELETED keeps it out.
  ASSERT_TRUE(backend->Delete(NameOf(ok)).ok());
  EXPECT_FALSE(informer->Get(NameOf(ok)).has_value());
  EXPECT_TRUE(WaitFor([&] { return JobNamesByKubectl().size() == 1; },
                      std::chrono::seconds(30)));
  EXPECT_FALSE(informer->Get(NameOf(ok)).has_value());
  EXPECT_EQ(informer->size(), 1u);
}

// A ServiceAccount bound to exactly what Cruncher needs can create,
// list, watch and delete Jobs through the backend; one whose Role lacks
// `delete` gets the API server's words for it.
TEST_F(JobsClusterTest, ServiceAccountWithCrunchersRole) {
  auto rbac = [&](const std::string& name, const std::string& job_verbs) {
    return "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: " + name +
           ", namespace: " + ns_ +
           "}\n---\n"
           "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\n"
           "metadata: {name: " +
           name + ", namespace: " + ns_ +
           "}\nrules:\n"
           "- apiGroups: [batch]\n  resources: [jobs]\n  verbs: [" +
           job_verbs +
           "]\n"
           "- apiGroups: ['']\n  resources: [pods, pods/log]\n"
           "  verbs: [get, list]\n"
           "- apiGroups: ['']\n  resources: [events]\n"
           "  verbs: [create, patch]\n"
           "- apiGroups: [coordination.k8s.io]\n  resources: [leases]\n"
           "  verbs: [get, create, update]\n"
           "---\n"
           "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n"
           "metadata: {name: " +
           name + ", namespace: " + ns_ +
           "}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, "
           "name: " +
           name + "}\nsubjects:\n- {kind: ServiceAccount, name: " + name +
           ", namespace: " + ns_ + "}\n";
  };
  Apply(rbac("cruncher", "create, get, list, watch, delete"));
  Apply(rbac("no-delete", "create, get, list, watch"));

  auto admin = LoadClusterConfig([&] {
    KubeConfigOptions o;
    o.kubeconfig = kubeconfig_;
    o.env = ProcessEnvironment();
    return o;
  }());
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  auto kubeconfig_for = [&](const std::string& sa) {
    CommandResult token =
        Kubectl("-n " + ns_ + " create token " + sa + " --duration=10m");
    EXPECT_EQ(token.exit_code, 0) << token.output;
    std::string t = token.output;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
    const std::string path = cluster_dir_ + "/" + ns_ + "-" + sa + ".yaml";
    std::ofstream(path)
        << "apiVersion: v1\nkind: Config\nclusters:\n- name: tc\n  cluster:\n"
        << "    server: " << admin->server << "\n"
        << "    certificate-authority-data: "
        << Base64Encode(admin->certificate_authority.data) << "\n"
        << "users:\n- name: " << sa << "\n  user:\n    token: " << t << "\n"
        << "contexts:\n- name: c\n  context: {cluster: tc, user: " << sa
        << ", namespace: " << ns_ << "}\ncurrent-context: c\n";
    return path;
  };
  // RBAC reaches the API server's authorizer through its own informer.
  auto can = [&](const std::string& sa, const std::string& verb) {
    return Kubectl("-n " + ns_ + " auth can-i " + verb +
                   " jobs.batch --as=system:serviceaccount:" + ns_ + ":" + sa)
               .exit_code == 0;
  };
  ASSERT_TRUE(WaitFor([&] { return can("cruncher", "delete"); },
                      std::chrono::seconds(30)));
  ASSERT_TRUE(WaitFor([&] { return can("no-delete", "create"); },
                      std::chrono::seconds(30)));

  {
    auto backend = Open(/*cache=*/true, "rbac", kubeconfig_for("cruncher"));
    ASSERT_NE(backend, nullptr);
    const JobInformer* informer = backend->informer();
    ASSERT_TRUE(WaitFor([&] { return informer->HasSynced(); },
                        std::chrono::seconds(30)));
    const nlohmann::json manifest = Manifest(seed_, "rbac", "sa-1");
    ASSERT_TRUE(backend->Create(manifest).ok());
    auto listed = backend->List();
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    EXPECT_EQ(listed->size(), 1u);
    // The watch works too: it brings the Job's completion.
    EXPECT_TRUE(WaitFor(
        [&] {
          std::optional<Job> job = informer->Get(NameOf(manifest));
          return job && job->state() == JobState::kComplete;
        },
        std::chrono::seconds(60)));
    Status deleted = backend->Delete(NameOf(manifest));
    EXPECT_TRUE(deleted.ok()) << deleted.ToString();
    EXPECT_TRUE(WaitFor([&] { return JobNamesByKubectl().empty(); },
                        std::chrono::seconds(30)));
  }

  auto backend = Open(/*cache=*/false, "rbac", kubeconfig_for("no-delete"));
  ASSERT_NE(backend, nullptr);
  const nlohmann::json manifest = Manifest(seed_, "rbac", "sa-2");
  ASSERT_TRUE(backend->Create(manifest).ok());
  Status deleted = backend->Delete(NameOf(manifest));
  EXPECT_EQ(deleted.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(deleted.message(),
              AllOf(HasSubstr("403 Forbidden"),
                    HasSubstr("cannot delete resource \"jobs\""),
                    HasSubstr("system:serviceaccount:" + ns_ + ":no-delete")));
  EXPECT_EQ(JobNamesByKubectl(), std::vector<std::string>{NameOf(manifest)});
}

// A watch from a resourceVersion the API server no longer has: 410. On
// 1.35 the watch cache serves every watch and keeps history from its own
// start (etcd compaction does not touch it), so the reliable way is an API
// server that restarted while the store moved on: its new cache begins
// after every version seen before. JobClient::Watch says NotFound with
// ApiError 410; the informer lists again and keeps serving.
TEST_F(JobsClusterTest, ExpiredResourceVersionMeans410AndARelist) {
  auto backend = Open(/*cache=*/true, "expired");
  ASSERT_NE(backend, nullptr);
  const JobInformer* informer = backend->informer();
  ASSERT_TRUE(
      WaitFor([&] { return informer->HasSynced(); }, std::chrono::seconds(30)));
  const nlohmann::json before = Manifest(seed_, "expired", "before");
  ASSERT_TRUE(backend->Create(before).ok());
  auto rest = Rest();
  ASSERT_NE(rest, nullptr);
  JobClient jobs(*rest, ns_);
  auto listed = jobs.List(kSelector, 500);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  const std::string old_version = listed->resource_version;
  // The watch has seen the Job (an event, not the write-through).
  ASSERT_TRUE(WaitFor([&] { return informer->watches() >= 1; },
                      std::chrono::seconds(30)));
  const std::uint64_t lists_before = informer->lists();
  EXPECT_EQ(lists_before, 1u);

  CommandResult stopped = Component("kill", "kube-apiserver");
  ASSERT_EQ(stopped.exit_code, 0) << stopped.output;
  ASSERT_GT(BumpEtcdRevision(Port("etcd-client")), 0);
  CommandResult started = Component("start", "kube-apiserver");
  ASSERT_EQ(started.exit_code, 0) << started.output;

  ApiError error;
  int events = 0;
  Status watched = jobs.Watch(
      kSelector, old_version, 10,
      [&](const WatchEvent&) {
        ++events;
        return true;
      },
      {}, &error);
  EXPECT_EQ(watched.code(), StatusCode::kNotFound) << watched.ToString();
  EXPECT_EQ(error.http_status, 410);
  EXPECT_EQ(error.reason, "Expired");
  EXPECT_THAT(watched.message(), HasSubstr("too old resource version"));
  EXPECT_EQ(events, 0);

  // The informer's watch broke; resumed from its old version it got the
  // same 410, and listed again.
  EXPECT_TRUE(WaitFor([&] { return informer->lists() > lists_before; },
                      std::chrono::seconds(60)))
      << "lists: " << informer->lists();
  // And it keeps serving: a Job made by someone else reaches the cache
  // through the new watch.
  const nlohmann::json after = Manifest(seed_, "expired", "after");
  ASSERT_TRUE(jobs.Create(after).ok());
  EXPECT_TRUE(WaitFor([&] { return informer->Get(NameOf(after)).has_value(); },
                      std::chrono::seconds(30)));
  EXPECT_TRUE(informer->Get(NameOf(before)).has_value());
  EXPECT_EQ(informer->size(), 2u);
}

// A list whose continue token expired between two pages (410 Expired):
// ListEach reports it with the Jobs of the first page already handed over,
// List starts over once, as client-go's pager does, and returns each Job
// once. On 1.35 a token outlives etcd compaction while the API server's
// watch cache holds its snapshot; after a restart the continue goes to etcd,
// which has compacted the token's revision away.
TEST_F(JobsClusterTest, ExpiredContinueTokenRestartsTheList) {
  auto backend = Open(/*cache=*/false, "continue");
  ASSERT_NE(backend, nullptr);
  std::vector<std::string> names;
  std::vector<nlohmann::json> manifests;
  for (int i = 0; i < 7; ++i) {
    manifests.push_back(Manifest(seed_, "continue", "c-" + std::to_string(i)));
    names.push_back(NameOf(manifests.back()));
  }
  for (const Status& s : backend->CreateBatch(manifests)) {
    ASSERT_TRUE(s.ok()) << s.ToString();
  }
  auto transport = std::make_shared<RecordingTransport>();
  auto rest = Rest(transport);
  ASSERT_NE(rest, nullptr);
  JobClient jobs(*rest, ns_);
  // After the first page: the API server restarts and etcd compacts.
  bool expire_next = true;
  std::string failure;
  transport->set_after(
      [&](const net::HttpRequest& request, const net::HttpOutcome& out) {
        if (!expire_next || out.response.status != 200 ||
            request.url.find("continue=") != std::string::npos) {
          return;
        }
        expire_next = false;
        CommandResult killed = Component("kill", "kube-apiserver");
        const long long revision = BumpEtcdRevision(Port("etcd-client"));
        Etcd(Port("etcd-client"), "kv/compaction",
             {{"revision", std::to_string(revision)}, {"physical", true}});
        CommandResult started = Component("start", "kube-apiserver");
        if (killed.exit_code != 0 || revision == 0 || started.exit_code != 0) {
          failure = killed.output + started.output;
        }
      });

  int handed = 0;
  ApiError error;
  auto each = jobs.ListEach(
      kSelector, 3, [&](const Job&) { ++handed; }, {}, &error);
  ASSERT_TRUE(failure.empty()) << failure;
  ASSERT_FALSE(each.ok());
  EXPECT_EQ(each.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(error.http_status, 410);
  EXPECT_EQ(error.reason, "Expired");
  EXPECT_THAT(each.status().message(),
              HasSubstr("continue parameter is too old"));
  EXPECT_EQ(handed, 3);  // the first page, now stale: the caller lists again

  expire_next = true;
  const std::size_t before = transport->requests().size();
  auto list = jobs.List(kSelector, 3);
  ASSERT_TRUE(failure.empty()) << failure;
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::vector<std::string> listed;
  for (const Job& job : list->jobs) listed.push_back(job.name());
  EXPECT_THAT(listed, UnorderedElementsAreArray(names));  // each once
  std::vector<std::string> requests = transport->requests();
  requests.erase(requests.begin(),
                 requests.begin() + static_cast<std::ptrdiff_t>(before));
  // Page 1, its continue (410), then the whole list again: 3 pages. A
  // retried GET after the restart (a connection gone stale) may add one.
  EXPECT_GE(requests.size(), 5u) << ::testing::PrintToString(requests);
  EXPECT_LE(requests.size(), 6u) << ::testing::PrintToString(requests);
}

// The API server goes away for 30 s while the backend, with its cache,
// keeps being asked to create Jobs: every create fails with Unavailable,
// reads are served from the cache, nothing crashes; when the API server is
// back the informer catches up on its own, and creating the same manifests
// again makes no second Job (AlreadyExists for those that landed before).
TEST_F(JobsClusterTest, ApiServerOutage) {
  auto backend = Open(/*cache=*/true, "outage");
  ASSERT_NE(backend, nullptr);
  const JobInformer* informer = backend->informer();
  ASSERT_TRUE(
      WaitFor([&] { return informer->HasSynced(); }, std::chrono::seconds(30)));
  std::vector<nlohmann::json> landed, during, all;
  for (int i = 0; i < 3; ++i) {
    landed.push_back(Manifest(seed_, "outage", "before-" + std::to_string(i)));
    during.push_back(Manifest(seed_, "outage", "during-" + std::to_string(i)));
  }
  all = landed;
  all.insert(all.end(), during.begin(), during.end());
  for (const Status& s : backend->CreateBatch(landed)) {
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  CommandResult killed = Component("kill", "kube-apiserver");
  ASSERT_EQ(killed.exit_code, 0) << killed.output;
  const auto outage_start = SteadyClock::now();
  const std::uint64_t watches_at_kill = informer->watches();
  int rounds = 0;
  std::string an_error;
  while (SteadyClock::now() - outage_start < std::chrono::seconds(30)) {
    ++rounds;
    std::vector<Status> results = backend->CreateBatch(all);
    for (std::size_t i = 0; i < results.size(); ++i) {
      EXPECT_EQ(results[i].code(), StatusCode::kUnavailable)
          << NameOf(all[i]) << ": " << results[i].ToString();
      an_error = results[i].message();
    }
    // Reads come from the cache meanwhile.
    auto job = backend->Get(NameOf(landed[0]));
    EXPECT_TRUE(job.ok()) << job.status().ToString();
    auto unfinished = backend->CountUnfinished();
    EXPECT_TRUE(unfinished.ok()) << unfinished.status().ToString();
  }
  EXPECT_GE(rounds, 2);
  EXPECT_THAT(an_error, HasSubstr("Connection refused"));
  // The informer backed off rather than spinning: a handful of attempts.
  const std::uint64_t watches_during = informer->watches();
  EXPECT_LE(watches_during - watches_at_kill, 10u);
  CommandResult started = Component("start", "kube-apiserver");
  ASSERT_EQ(started.exit_code, 0) << started.output;
  const auto back = SteadyClock::now();

  // Caught up without a restart: a Job made by someone else appears.
  auto rest = Rest();
  ASSERT_NE(rest, nullptr);
  JobClient jobs(*rest, ns_);
  const nlohmann::json probe = Manifest(seed_, "outage", "probe");
  ASSERT_TRUE(jobs.Create(probe).ok());
  EXPECT_TRUE(WaitFor([&] { return informer->Get(NameOf(probe)).has_value(); },
                      std::chrono::seconds(60)))
      << "watches: " << informer->watches() << ", lists " << informer->lists();
  std::cout << "[          ] " << rounds << " rounds of creates in the outage ("
            << an_error << "); " << watches_during - watches_at_kill
            << " watch attempts in it, " << informer->lists()
            << " lists in all; the cache caught up "
            << std::chrono::duration_cast<std::chrono::milliseconds>(
                   SteadyClock::now() - back)
                   .count()
            << " ms after the API server was ready\n";

  std::vector<Status> again = backend->CreateBatch(all);
  for (std::size_t i = 0; i < again.size(); ++i) {
    const bool before = i < landed.size();
    EXPECT_EQ(again[i].code(),
              before ? StatusCode::kAlreadyExists : StatusCode::kOk)
        << NameOf(all[i]) << ": " << again[i].ToString();
  }
  std::vector<std::string> expected;
  for (const auto& m : all) expected.push_back(NameOf(m));
  expected.push_back(NameOf(probe));
  EXPECT_THAT(JobNamesByKubectl(), UnorderedElementsAreArray(expected));
  auto listed = jobs.List(kSelector, 500);
  ASSERT_TRUE(listed.ok()) << listed.status().ToString();
  EXPECT_EQ(listed->jobs.size(), expected.size());
}

}  // namespace
}  // namespace cruncher::kube
