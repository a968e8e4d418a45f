// EventRecorder on the real test cluster (tools/testcluster): Events about
// a Job are accepted by the API server's validation and read back by
// kubectl as operators read them (`get events --field-selector`,
// `describe job`).
//
// Run through tools/testcluster/with-cluster.sh.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cluster_test_util.h"
#include "core/clock.h"
#include "kube/events.h"

namespace cruncher::kube {
namespace {

using testing::ClusterClient;
using ::testing::HasSubstr;
using testing::Kubectl;
using ::testing::StartsWith;

// Creates a Job `name` in "default" and returns its uid.
std::string CreateJob(RestClient& client, const std::string& name) {
  const nlohmann::json job = {
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata", {{"name", name}}},
      {"spec",
       {{"template",
         {{"spec",
           {{"restartPolicy", "Never"},
            {"containers", {{{"name", "task"}, {"image", "busybox"}}}}}}}}}}};
  auto created =
      client.Do({"POST", "/apis/batch/v1/namespaces/default/jobs", job.dump()});
  EXPECT_TRUE(created.ok()) << created.status().ToString();
  if (!created.ok()) return "";
  return created->value("/metadata/uid"_json_pointer, "");
}

// Our Events about `job`, as kubectl lists them.
std::vector<nlohmann::json> CruncherEvents(const std::string& job) {
  nlohmann::json list = Kubectl(
      "-n default get events --field-selector involvedObject.name=" + job);
  std::vector<nlohmann::json> ours;
  for (const auto& event : list.value("items", nlohmann::json::array())) {
    if (event.value("/source/component"_json_pointer, "") == "cruncher") {
      ours.push_back(event);
    }
  }
  return ours;
}

TEST(KubeEventsClusterTest, RecordsAnEventOnAJobThatKubectlShows) {
  auto client = ClusterClient();
  ASSERT_NE(client, nullptr);
  const std::string uid = CreateJob(*client, "event-target");
  ASSERT_FALSE(uid.empty());
  EventRecorder recorder(*client, SystemClock::Get(), "cruncher", "test-host");
  const Millis before = SystemClock::Get().NowMillis() / 1000 * 1000;
  Status recorded =
      recorder.Record({"default", "event-target", uid}, "Requeued",
                      "sent back to queue tasks as message 1f2e");
  ASSERT_TRUE(recorded.ok()) << recorded.ToString();
  recorded = recorder.Record({"default", "event-target", uid}, "RequeueFailed",
                             "the queue refused it", EventType::kWarning);
  ASSERT_TRUE(recorded.ok()) << recorded.ToString();

  auto events = CruncherEvents("event-target");
  ASSERT_EQ(events.size(), 2u);
  const nlohmann::json& event =
      events[0].value("reason", "") == "Requeued" ? events[0] : events[1];
  const nlohmann::json& warning = &event == &events[0] ? events[1] : events[0];
  EXPECT_EQ(event.value("reason", ""), "Requeued");
  EXPECT_EQ(event.value("message", ""),
            "sent back to queue tasks as message 1f2e");
  EXPECT_EQ(event.value("type", ""), "Normal");
  EXPECT_EQ(event.value("count", 0), 1);
  EXPECT_THAT(event.value("/metadata/name"_json_pointer, ""),
              StartsWith("event-target."));
  const nlohmann::json involved =
      event.value("involvedObject", nlohmann::json::object());
  EXPECT_EQ(involved.value("kind", ""), "Job");
  EXPECT_EQ(involved.value("apiVersion", ""), "batch/v1");
  EXPECT_EQ(involved.value("name", ""), "event-target");
  EXPECT_EQ(involved.value("namespace", ""), "default");
  EXPECT_EQ(involved.value("uid", ""), uid);
  EXPECT_EQ(event.value("/source/host"_json_pointer, ""), "test-host");
  EXPECT_EQ(event.value("reportingComponent", ""), "cruncher");
  EXPECT_GE(testing::ParseTimestamp(event.value("firstTimestamp", "")), before);
  EXPECT_EQ(event.value("lastTimestamp", ""),
            event.value("firstTimestamp", ""));
  EXPECT_EQ(warning.value("type", ""), "Warning");
  EXPECT_EQ(warning.value("reason", ""), "RequeueFailed");

  // `kubectl describe job` lists them with the Job controller's own.
  FILE* pipe = ::popen("kubectl -n default describe job event-target", "r");
  ASSERT_NE(pipe, nullptr);
  std::string described;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) {
    described.append(buffer, n);
  }
  EXPECT_EQ(::pclose(pipe), 0);
  EXPECT_THAT(described, HasSubstr("Requeued"));
  EXPECT_THAT(described, HasSubstr("sent back to queue tasks as message 1f2e"));
  EXPECT_THAT(described, HasSubstr("cruncher"));
}

TEST(KubeEventsClusterTest, AFailureIsAStatusNotACrash) {
  auto client = ClusterClient();
  ASSERT_NE(client, nullptr);
  EventRecorder recorder(*client, SystemClock::Get());
  Status status =
      recorder.Record({"no-such-namespace", "j", "u"}, "Requeued", "m");
  EXPECT_EQ(status.code(), StatusCode::kNotFound) << status.ToString();
  EXPECT_THAT(status.message(),
              HasSubstr("event Requeued on Job no-such-namespace/j: POST "));
  // Involved object and Event in different namespaces: the server's
  // validation refuses it, and we say so.
  nlohmann::json event =
      BuildJobEvent({"default", "j", "u"}, "Requeued", "m", EventType::kNormal,
                    "cruncher", "", SystemClock::Get().NowMillis());
  auto refused = client->Do(
      {"POST", "/api/v1/namespaces/kube-system/events", event.dump()});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument)
      << refused.status().ToString();
}

}  // namespace
}  // namespace cruncher::kube
