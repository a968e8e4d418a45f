#include "core/job_name.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>
#include <vector>

namespace cruncher {
namespace {

bool IsDns1123Label(const std::string& s) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return !s.empty() && s.size() <= 63 && std::regex_match(s, kLabel);
}

TEST(JobNameTest, DeterministicForTheSameQueueAndMessage) {
  EXPECT_EQ(JobNameFor("demo-", "tasks", "m-1"),
            JobNameFor("demo-", "tasks", "m-1"));
  std::string name = JobNameFor("demo-", "tasks", "m-1");
  EXPECT_EQ(name.rfind("demo-", 0), 0u) << name;
  EXPECT_EQ(name.size(), std::string("demo-").size() + kJobNameHashLength);
  EXPECT_TRUE(IsDns1123Label(name)) << name;
}

TEST(JobNameTest, DifferentMessagesOrQueuesGiveDifferentNames) {
  std::set<std::string> names;
  for (int i = 0; i < 2000; ++i) {
    names.insert(JobNameFor("demo-", "tasks", "message-" + std::to_string(i)));
  }
  EXPECT_EQ(names.size(), 2000u);
  EXPECT_NE(JobNameFor("demo-", "a", "m"), JobNameFor("demo-", "b", "m"));
  // The separator keeps ("ab","c") and ("a","bc") apart.
  EXPECT_NE(JobNameFor("p-", "ab", "c"), JobNameFor("p-", "a", "bc"));
}

TEST(JobNameTest, ValidForWeirdPrefixes) {
  const std::string prefixes[] = {"",
                                  "-",
                                  "---",
                                  "Demo-",
                                  "UPPER_case.dots-",
                                  "a.b.c",
                                  "under_score",
                                  "__x__",
                                  "...",
                                  "9lives-",
                                  "h\xC3\xA9llo-",
                                  "sp ace-",
                                  std::string(100, 'a'),
                                  std::string(100, '-'),
                                  "-" + std::string(99, 'Z'),
                                  "x",
                                  "$name-",
                                  "a--b-"};
  for (const auto& prefix : prefixes) {
    SCOPED_TRACE("prefix: \"" + prefix + "\"");
    std::string name = JobNameFor(prefix, "queue", "0b7c1d1e-8a57");
    EXPECT_TRUE(IsDns1123Label(name)) << name;
    EXPECT_LE(name.size(), kMaxJobNameLength);
    std::string sanitized = SanitizeJobNamePrefix(prefix);
    EXPECT_LE(sanitized.size(), kMaxJobNameLength - kJobNameHashLength);
    EXPECT_EQ(name.substr(0, sanitized.size()), sanitized);
  }
}

TEST(JobNameTest, SanitizePrefix) {
  EXPECT_EQ(SanitizeJobNamePrefix(""), "job-");
  EXPECT_EQ(SanitizeJobNamePrefix("..."), "job-");
  EXPECT_EQ(SanitizeJobNamePrefix("Demo-"), "demo-");
  EXPECT_EQ(SanitizeJobNamePrefix("My_Job.v2-"), "my-job-v2-");
  EXPECT_EQ(SanitizeJobNamePrefix("--lead"), "lead");
  EXPECT_EQ(SanitizeJobNamePrefix(std::string(100, 'a')), std::string(53, 'a'));
}

TEST(JobNameTest, LabelValue) {
  static const std::regex kValue("([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?");
  EXPECT_EQ(ToLabelValue("tasks"), "tasks");
  EXPECT_EQ(ToLabelValue("My.Queue_1"), "My.Queue_1");
  EXPECT_EQ(ToLabelValue(""), "");
  for (const std::string& q :
       {std::string(100, 'q'), std::string("-_.x._-"), std::string("a b/c:d"),
        std::string(62, 'a') + "-b", std::string("https://sqs/123/q")}) {
    std::string v = ToLabelValue(q);
    EXPECT_LE(v.size(), 63u) << q;
    EXPECT_TRUE(std::regex_match(v, kValue)) << q << " -> " << v;
  }
}

}  // namespace
}  // namespace cruncher

namespace cruncher {
namespace {

TEST(QueueLabelFor, IsTheQueueNameForAnSqsUrlToo) {
  EXPECT_EQ(QueueLabelFor("tasks"), "tasks");
  EXPECT_EQ(QueueLabelFor("https://sqs.us-east-1.amazonaws.com/123456789012/"
                          "crunch"),
            "crunch");
  EXPECT_EQ(QueueLabelFor("http://127.0.0.1:4566/000000000000/crunch/"),
            "crunch");
  // A URL without a queue path (not a valid queue URL): its last segment.
  EXPECT_EQ(QueueLabelFor("http://host"), "host");
}

// Finding 13: "-abc_" got the label "abc", the same as queue "abc", and
// names over 63 characters were cut to one label; such queues shared
// watch's cache, --max-active and every command's selection.
TEST(QueueLabelFor, NamesThatAreNotLabelValuesGetAHashAndNeverCollide) {
  const std::regex label_value("([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?");
  const std::string long_a = std::string(63, 'a');
  const std::vector<std::string> queues = {
      "abc",  "-abc_",      "_abc",        "abc-",
      "abc_", "-abc",       "__",          "-",
      long_a, long_a + "b", long_a + "c",  std::string(80, 'a'),
      "a.b",  "a-b_c",      "Orders_High", "x_-",
  };
  std::set<std::string> labels;
  for (const auto& q : queues) {
    const std::string label = QueueLabelFor(q);
    EXPECT_TRUE(std::regex_match(label, label_value)) << q << " -> " << label;
    EXPECT_FALSE(label.empty()) << q;
    EXPECT_LE(label.size(), kMaxLabelLength) << q << " -> " << label;
    EXPECT_TRUE(labels.insert(label).second) << q << " -> " << label;
    // The same for the queue's SQS URL.
    EXPECT_EQ(QueueLabelFor("https://sqs.us-east-1.amazonaws.com/1/" + q),
              label);
  }
  // Names that are label values keep their label (Jobs already created).
  for (const char* q : {"abc", "a.b", "a-b_c", "Orders_High"}) {
    EXPECT_EQ(QueueLabelFor(q), q);
  }
  EXPECT_EQ(QueueLabelFor(long_a), long_a);
  // Others keep a readable part.
  EXPECT_EQ(QueueLabelFor("-abc_").rfind("abc-", 0), 0u)
      << QueueLabelFor("-abc_");
  EXPECT_EQ(QueueLabelFor(long_a + "b").rfind(std::string(52, 'a') + "-", 0),
            0u);
  EXPECT_EQ(QueueLabelFor("__").size(), kQueueLabelHashLength);
}

}  // namespace
}  // namespace cruncher

namespace cruncher {
namespace {

TEST(LeaseNameFor, IsAValidObjectNameForAnySqsQueueName) {
  const std::regex dns_label("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  for (const char* queue :
       {"tasks", "My_Queue", "orders_high", "-_-",
        "https://sqs.us-east-1.amazonaws.com/111111111111/Orders_High",
        "https://sqs.us-east-1.amazonaws.com/111111111111/"
        "a_very_long_queue_name_of_eighty_characters_which_sqs_allows_"
        "xxxxxxxxxxxxxxxxx"}) {
    const std::string name = LeaseNameFor(queue);
    EXPECT_TRUE(std::regex_match(name, dns_label)) << queue << " -> " << name;
    EXPECT_LE(name.size(), 63u) << name;
  }
  EXPECT_EQ(LeaseNameFor("My_Queue").rfind("cruncher-my-queue-", 0), 0u);
  // The same name in two accounts: two Leases.
  EXPECT_NE(LeaseNameFor("https://sqs.us-east-1.amazonaws.com/111/tasks"),
            LeaseNameFor("https://sqs.us-east-1.amazonaws.com/222/tasks"));
}

TEST(JobNameTest, ValidObjectNamesAreDns1123Subdomains) {
  for (const char* name :
       {"a", "demo-0123456789", "a.b", "a-1.b-2.c", "0", "9x"}) {
    EXPECT_TRUE(IsValidObjectName(name)) << name;
    EXPECT_TRUE(CheckJobName(name).ok()) << name;
  }
  EXPECT_TRUE(IsValidObjectName(std::string(253, 'a')));
  for (const std::string& name :
       std::vector<std::string>{"",
                                "../../other/jobs/victim",
                                "..",
                                ".",
                                "a..b",
                                "a.",
                                ".a",
                                "-a",
                                "a-",
                                "a.-b",
                                "a-.b",
                                "BAD",
                                "a b",
                                "a/b",
                                "a%2fb",
                                "a?x=1",
                                "a#b",
                                "a_b",
                                std::string("a\0b", 3),
                                "a\nb",
                                std::string(254, 'a')}) {
    EXPECT_FALSE(IsValidObjectName(name)) << name;
  }
}

TEST(JobNameTest, CheckJobNameNamesTheBadNameEscaped) {
  Status bad = CheckJobName("../x\r\nX-Evil: 1");
  EXPECT_EQ(bad.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(bad.message().find("invalid Job name \"../x\\x0d\\x0aX-Evil: 1\""),
            std::string::npos)
      << bad.message();
  EXPECT_NE(CheckJobName("").message().find("invalid Job name \"\""),
            std::string::npos);
  // A long name is cut, not printed whole.
  EXPECT_LT(CheckJobName(std::string(10'000, 'A')).message().size(), 300u);
}

}  // namespace
}  // namespace cruncher

namespace cruncher {
namespace {

// Attack finding 5: a queue URL spelled two ways made two Jobs per message.
TEST(QueueIdentity, IsTheSameForEverySpellingOfOneQueue) {
  const std::string want = "us-east-1:123456789012:spell";
  for (const char* url :
       {"https://sqs.us-east-1.amazonaws.com/123456789012/spell",
        "https://queue.amazonaws.com/123456789012/spell",
        "https://SQS.us-east-1.amazonaws.com/123456789012/spell/",
        "https://us-east-1.queue.amazonaws.com/123456789012/spell",
        "https://vpce-0abc-xyz.sqs.us-east-1.vpce.amazonaws.com/123456789012/"
        "spell",
        "https://sqs.us-east-1.amazonaws.com:443/123456789012/spell?x=1"}) {
    EXPECT_EQ(QueueIdentity(url), want) << url;
  }
  // Emulators: the host does not matter.
  EXPECT_EQ(QueueIdentity("http://127.0.0.1:15000/123456789012/spell"),
            QueueIdentity("http://localhost:15000/123456789012/spell"));
  EXPECT_EQ(QueueIdentity("http://[::1]:9324/000000000000/tasks"),
            ":000000000000:tasks");
  // Local queue names are themselves.
  EXPECT_EQ(QueueIdentity("tasks"), "tasks");
}

TEST(QueueIdentity, TellsQueuesApart) {
  EXPECT_NE(QueueIdentity("https://sqs.us-east-1.amazonaws.com/1/q"),
            QueueIdentity("https://sqs.eu-west-1.amazonaws.com/1/q"));
  EXPECT_NE(QueueIdentity("https://sqs.us-east-1.amazonaws.com/1/q"),
            QueueIdentity("https://sqs.us-east-1.amazonaws.com/2/q"));
  EXPECT_NE(QueueIdentity("https://sqs.us-gov-west-1.amazonaws.com/1/q"),
            QueueIdentity("https://sqs.us-east-1.amazonaws.com/1/q"));
  // Malformed URLs do not crash and stay distinct.
  for (const char* odd : {"http://", "http:///", "https://host", "x://[::1",
                          "https://h/a", "https://@/a/b"}) {
    (void)QueueIdentity(odd);
  }
  EXPECT_NE(QueueIdentity("https://h/a"), QueueIdentity("https://h/b"));
}

TEST(QueueIdentity, NamesOneJobAndOneLeasePerQueue) {
  EXPECT_EQ(
      JobNameFor("p-", "http://127.0.0.1:15000/123456789012/spell", "m"),
      JobNameFor("p-", "http://localhost:15000/123456789012/spell/", "m"));
  EXPECT_EQ(LeaseNameFor("https://sqs.us-east-1.amazonaws.com/1/q"),
            LeaseNameFor("https://queue.amazonaws.com/1/q"));
}

}  // namespace
}  // namespace cruncher
