#include "cli/settings.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "app/backends.h"
#include "cli/common.h"

namespace cruncher::cli {
namespace {

using nlohmann::json;

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            ("settings_test." + std::to_string(::getpid()) + "." +
             std::to_string(counter_++));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string Write(const std::string& name, const std::string& text) const {
    std::string file = (path_ / name).string();
    std::ofstream(file, std::ios::binary) << text;
    return file;
  }
  std::string path(const std::string& name) const {
    return (path_ / name).string();
  }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

// `cruncher watch`'s flags (the real AddBackendOptions and
// AddRuntimeOptions), beside another command with a flag of its own.
struct Cli {
  CLI::App app{"test"};
  CLI::App* watch = nullptr;
  app::BackendOptions backend;
  app::RuntimeOptions runtime;
  std::string ack = "on-create";
  bool no_sqs_enabled = true;
  std::string other_only;

  Cli() {
    watch = app.add_subcommand("watch");
    AddBackendOptions(watch, backend);
    AddRuntimeOptions(watch, runtime, ack);
    watch->add_flag("!--no-sqs", no_sqs_enabled, "negated flag");
    auto* other = app.add_subcommand("other");
    other->add_option("--other-only", other_only);
  }

  // Parses `args` after "watch", then applies `env` and the --config file.
  Result<SettingSources> Run(std::vector<std::string> args,
                             const EnvVars& env = {}) {
    args.insert(args.begin(), {"cruncher", "watch"});
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    app.parse(static_cast<int>(argv.size()), argv.data());
    return ApplySettings(*watch, env);
  }
};

// ---- ReadConfigFile ----

TEST(ReadConfigFileTest, ReadsScalarsListsAndLines) {
  TempDir dir;
  auto path = dir.Write("c.yaml",
                        "# settings\n"
                        "queue-url: https://sqs.example/1/q\n"
                        "max-active: 40\n"
                        "local: true\n"
                        "quoted: \"true\"\n"
                        "several: [a, b]\n");
  auto entries = ReadConfigFile(path);
  ASSERT_TRUE(entries.ok()) << entries.status().message();
  ASSERT_EQ(entries->size(), 5u);
  EXPECT_EQ((*entries)[0].key, "queue-url");
  EXPECT_EQ((*entries)[0].values,
            std::vector<std::string>{"https://sqs.example/1/q"});
  EXPECT_EQ((*entries)[0].line, 2);
  EXPECT_EQ((*entries)[1].values, std::vector<std::string>{"40"});
  EXPECT_TRUE((*entries)[2].plain);
  EXPECT_FALSE((*entries)[3].plain);
  EXPECT_TRUE((*entries)[4].list);
  EXPECT_EQ((*entries)[4].values, (std::vector<std::string>{"a", "b"}));
}

TEST(ReadConfigFileTest, AnEmptyFileSetsNothing) {
  TempDir dir;
  auto entries = ReadConfigFile(dir.Write("c.yaml", "# nothing yet\n"));
  ASSERT_TRUE(entries.ok()) << entries.status().message();
  EXPECT_TRUE(entries->empty());
}

// Each refusal names the file, and the line and key where there is one.
TEST(ReadConfigFileTest, RefusesWhatIsNotAFlatMappingOfValues) {
  TempDir dir;
  struct Case {
    std::string text;
    std::string expected;
  } cases[] = {
      {"queue-url:\n", "line 1: \"queue-url\" has no value (null)"},
      {"a: 1\nqueue: ~\n", "line 2: \"queue\" has no value (null)"},
      {"queue: {name: x}\n",
       "\"queue\" must be a value or a list of values, "
       "not a mapping"},
      {"queue: [a, [b]]\n", "\"queue\" must list single values"},
      {"queue: [a, null]\n", "\"queue\" must list single values"},
      {"queue: a\nqueue: b\n", "line 2: \"queue\" is given twice"},
      {"- queue-url\n", "must be a mapping of flag names to values"},
      {"just words\n", "must be a mapping of flag names to values"},
      {"queue: [unclosed\n", "not valid YAML"},
      {"[a]: b\n", "line 1: a key must be a flag name"},
  };
  for (const auto& c : cases) {
    std::string path = dir.Write("c.yaml", c.text);
    auto entries = ReadConfigFile(path);
    ASSERT_FALSE(entries.ok()) << c.text;
    EXPECT_EQ(entries.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(entries.status().message().find("config file " + path + ": "),
              std::string::npos)
        << entries.status().message();
    EXPECT_NE(entries.status().message().find(c.expected), std::string::npos)
        << c.text << " -> " << entries.status().message();
  }
}

TEST(ReadConfigFileTest, RefusesAMissingFileOrADirectory) {
  TempDir dir;
  auto missing = ReadConfigFile(dir.path("absent.yaml"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("absent.yaml: no such file"),
            std::string::npos)
      << missing.status().message();
  auto directory = ReadConfigFile(dir.path(""));
  ASSERT_FALSE(directory.ok());
  EXPECT_NE(directory.status().message().find("not a regular file"),
            std::string::npos)
      << directory.status().message();
}

TEST(ReadConfigFileTest, RefusesAFileOverTheCapAndTakesOneAtIt) {
  TempDir dir;
  // A comment line padded to exactly the cap: read, and empty.
  std::string at_cap = "#" + std::string(kMaxConfigFileBytes - 2, 'x') + "\n";
  ASSERT_EQ(at_cap.size(), kMaxConfigFileBytes);
  auto taken = ReadConfigFile(dir.Write("at.yaml", at_cap));
  ASSERT_TRUE(taken.ok()) << taken.status().message();
  auto refused = ReadConfigFile(dir.Write("over.yaml", at_cap + "\n"));
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("larger than 1048576 bytes"),
            std::string::npos)
      << refused.status().message();
}

TEST(EnvNameForTest, UpperSnakeWithThePrefix) {
  EXPECT_EQ(EnvNameFor("queue-url"), "CRUNCHER_QUEUE_URL");
  EXPECT_EQ(EnvNameFor("data-dir"), "CRUNCHER_DATA_DIR");
  EXPECT_EQ(EnvNameFor("kube-qps"), "CRUNCHER_KUBE_QPS");
}

// ---- ApplySettings ----

TEST(ApplySettingsTest, FlagBeatsEnvBeatsFileBeatsDefault) {
  TempDir dir;
  auto config = dir.Write("c.yaml",
                          "queue: from-file\n"
                          "region: file-region\n"
                          "profile: file-profile\n"
                          "max-active: 40\n");
  Cli cli;
  auto sources = cli.Run(
      {"--config", config, "--queue", "from-flag"},
      {{"CRUNCHER_QUEUE", "from-env"}, {"CRUNCHER_REGION", "env-region"}});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  EXPECT_EQ(cli.backend.queue, "from-flag");
  EXPECT_EQ(cli.backend.region, "env-region");
  EXPECT_EQ(cli.backend.profile, "file-profile");
  EXPECT_EQ(cli.runtime.dispatcher.max_active, 40);
  EXPECT_EQ(cli.backend.kube_qps, 100);  // the default
  EXPECT_EQ(sources->at("queue"), "flag");
  EXPECT_EQ(sources->at("region"), "env CRUNCHER_REGION");
  EXPECT_EQ(sources->at("profile"), "file " + config);
  EXPECT_EQ(sources->at("config"), "flag");
  EXPECT_EQ(sources->count("kube-qps"), 0u);
}

// The variables that predate the config file keep working, now as the
// environment layer of their flags.
TEST(ApplySettingsTest, TheLongstandingVariablesAreTheirFlagsEnvLayer) {
  Cli cli;
  auto sources = cli.Run({}, {{"CRUNCHER_DATA_DIR", "/srv/cruncher"},
                              {"CRUNCHER_QUEUE", "jobs"},
                              {"CRUNCHER_QUEUE_URL", "http://q.example/1/q"},
                              {"CRUNCHER_BACKEND", "local"}});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  EXPECT_EQ(cli.backend.data_dir, "/srv/cruncher");
  EXPECT_EQ(cli.backend.queue, "jobs");
  EXPECT_EQ(cli.backend.queue_url, "http://q.example/1/q");
  EXPECT_EQ(cli.backend.backend, "local");
}

TEST(ApplySettingsTest, ConfigFileFromTheEnvironment) {
  TempDir dir;
  auto config = dir.Write("c.yaml", "ack: on-success\nkube-burst: 7\n");
  Cli cli;
  auto sources = cli.Run({}, {{"CRUNCHER_CONFIG", config}});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  EXPECT_EQ(cli.ack, "on-success");
  EXPECT_EQ(cli.backend.kube_burst, 7);
  EXPECT_EQ(sources->at("config"), "env CRUNCHER_CONFIG");
}

TEST(ApplySettingsTest, FlagsFromTheEnvironmentAndTheFile) {
  TempDir dir;
  auto config = dir.Write("c.yaml", "no-sqs: true\n");
  Cli cli;
  auto sources = cli.Run({"--config", config}, {{"CRUNCHER_LOCAL", "1"}});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  EXPECT_TRUE(cli.backend.local);
  EXPECT_FALSE(cli.no_sqs_enabled);  // --no-sqs clears it
  json settings = EffectiveSettings(*cli.watch);
  EXPECT_EQ(settings["local"], true);
  EXPECT_EQ(settings["no-sqs"], true);

  Cli off;
  auto kept = off.Run({"--config", dir.Write("d.yaml", "no-sqs: false\n")},
                      {{"CRUNCHER_LOCAL", "false"}});
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  EXPECT_FALSE(off.backend.local);
  EXPECT_TRUE(off.no_sqs_enabled);
  EXPECT_EQ(EffectiveSettings(*off.watch)["no-sqs"], false);
}

// Every refusal exits 2 in the CLI; the message says where the value was.
TEST(ApplySettingsTest, RefusesBadValuesNamingFileLineAndKey) {
  TempDir dir;
  struct Case {
    std::string text;
    std::string expected;
  } cases[] = {
      {"max-active: many\n", "line 1: \"max-active\": "},
      {"queue: a\nkube-qps: 0\n", "line 2: \"kube-qps\": "},
      {"ack: sometimes\n", "\"ack\": "},
      {"max-active: [1, 2]\n", "\"max-active\": takes one value, not a list"},
      {"local: \"true\"\n", "\"local\": expected true or false"},
      {"local: 1\n", "\"local\": expected true or false"},
      {"queue-uri: x\n", "\"queue-uri\" is not a flag of any cruncher command"},
      {"--queue: x\n", "\"--queue\" is not a flag of any cruncher command"},
      {"config: other.yaml\n", "\"config\" cannot be set in a config file"},
      {"help: true\n", "\"help\" cannot be set in a config file"},
  };
  for (const auto& c : cases) {
    std::string path = dir.Write("c.yaml", c.text);
    Cli cli;
    auto sources = cli.Run({"--config", path});
    ASSERT_FALSE(sources.ok()) << c.text;
    EXPECT_EQ(sources.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(sources.status().message().find("config file " + path),
              std::string::npos)
        << sources.status().message();
    EXPECT_NE(sources.status().message().find(c.expected), std::string::npos)
        << c.text << " -> " << sources.status().message();
  }
}

TEST(ApplySettingsTest, RefusesBadEnvironmentValuesNamingTheVariable) {
  Cli cli;
  auto sources = cli.Run({}, {{"CRUNCHER_MAX_ACTIVE", "lots"}});
  ASSERT_FALSE(sources.ok());
  EXPECT_NE(sources.status().message().find("env CRUNCHER_MAX_ACTIVE: "),
            std::string::npos)
      << sources.status().message();
  Cli flag;
  auto bad_flag = flag.Run({}, {{"CRUNCHER_LOCAL", "perhaps"}});
  ASSERT_FALSE(bad_flag.ok());
  EXPECT_NE(bad_flag.status().message().find(
                "env CRUNCHER_LOCAL: expected true or false"),
            std::string::npos)
      << bad_flag.status().message();
}

TEST(ApplySettingsTest, AKeyOfAnotherCommandIsIgnored) {
  TempDir dir;
  auto config = dir.Write("c.yaml", "other-only: x\nqueue: q\n");
  Cli cli;
  auto sources = cli.Run({"--config", config});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  EXPECT_EQ(cli.backend.queue, "q");
  EXPECT_EQ(cli.other_only, "");
}

// --local excludes --queue-url: a higher layer's choice wins over a lower
// one's; both in one lower layer is a conflict.
TEST(ApplySettingsTest, ExclusiveFlagsAcrossLayers) {
  TempDir dir;
  Cli flag_wins;
  auto sources = flag_wins.Run(
      {"--local"}, {{"CRUNCHER_QUEUE_URL", "http://q.example/1/q"}});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  EXPECT_TRUE(flag_wins.backend.local);
  EXPECT_EQ(flag_wins.backend.queue_url, "");

  Cli env_wins;
  auto config = dir.Write("c.yaml", "local: true\n");
  sources = env_wins.Run({"--config", config},
                         {{"CRUNCHER_QUEUE_URL", "http://q.example/1/q"}});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  EXPECT_FALSE(env_wins.backend.local);
  EXPECT_EQ(env_wins.backend.queue_url, "http://q.example/1/q");

  Cli conflict;
  auto both = dir.Write("both.yaml", "local: true\nqueue-url: http://q/1/q\n");
  sources = conflict.Run({"--config", both});
  ASSERT_FALSE(sources.ok());
  EXPECT_NE(sources.status().message().find("exclude each other"),
            std::string::npos)
      << sources.status().message();
}

TEST(ApplySettingsTest, WithoutAConfigFileOnlyTheEnvironmentApplies) {
  Cli cli;
  auto sources = cli.Run({"--kube-qps", "5"}, {{"CRUNCHER_KUBE_QPS", "9"}});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  EXPECT_EQ(cli.backend.kube_qps, 5);
  EXPECT_EQ(sources->count("config"), 0u);
}

// ---- EffectiveSettings, IsSecretName, RedactSecrets ----

TEST(EffectiveSettingsTest, ValuesDefaultsNumbersAndFlags) {
  Cli cli;
  auto sources = cli.Run({"--queue", "q", "--max-active", "12"});
  ASSERT_TRUE(sources.ok()) << sources.status().message();
  json settings = EffectiveSettings(*cli.watch);
  EXPECT_EQ(settings["queue"], "q");
  EXPECT_EQ(settings["max-active"], 12);
  EXPECT_EQ(settings["kube-qps"], 100);  // default, a number
  EXPECT_EQ(settings["ack"], "on-create");
  EXPECT_EQ(settings["local"], false);
  EXPECT_TRUE(settings["region"].is_null());  // neither given nor defaulted
  EXPECT_FALSE(settings.contains("help"));
}

TEST(SecretsTest, NamesThatHoldSecrets) {
  for (const char* name :
       {"token", "auth-token", "AWS_SESSION_TOKEN", "client-secret", "password",
        "db_passwd", "credentials", "api-key", "apiKey", "private-key-file",
        "X-Amz-Security-Token", "X-Amz-Credential"}) {
    EXPECT_TRUE(IsSecretName(name)) << name;
  }
  for (const char* name : {"queue-url", "kube-qps", "auth-keys-file",
                           "namespace", "template", "keyboard"}) {
    EXPECT_FALSE(IsSecretName(name)) << name;
  }
}

TEST(SecretsTest, RedactsSecretNamesUrlUserinfoAndQueryParameters) {
  json settings = {
      {"queue-url", "https://sqs.us-east-1.amazonaws.com/123/tasks"},
      {"endpoint-url", "http://AKIDEXAMPLE:wJalrXUtnFEMI@127.0.0.1:9324/x"},
      {"proxy", "http://user@proxy:3128"},
      {"presigned",
       "https://h/p?X-Amz-Credential=AKID%2F2026&X-Amz-Signature=abc&"
       "X-Amz-Security-Token=tok&a=1#frag"},
      {"api-token", "s3cr3t"},
      {"client-secret", 42},
      {"password", nullptr},
      {"nested", {{"db-password", "hunter2"}, {"urls", {"ftp://u:p@h/"}}}},
      {"not-a-url", "user:pass@host"},
  };
  json redacted = RedactSecrets(settings);
  EXPECT_EQ(redacted["queue-url"], settings["queue-url"]);
  EXPECT_EQ(redacted["endpoint-url"], "http://<redacted>@127.0.0.1:9324/x");
  EXPECT_EQ(redacted["proxy"], "http://<redacted>@proxy:3128");
  EXPECT_EQ(redacted["presigned"],
            "https://h/p?X-Amz-Credential=<redacted>&X-Amz-Signature=abc&"
            "X-Amz-Security-Token=<redacted>&a=1#frag");
  EXPECT_EQ(redacted["api-token"], "<redacted>");
  EXPECT_EQ(redacted["client-secret"], "<redacted>");
  EXPECT_TRUE(redacted["password"].is_null());  // nothing to hide
  EXPECT_EQ(redacted["nested"]["db-password"], "<redacted>");
  EXPECT_EQ(redacted["nested"]["urls"][0], "ftp://<redacted>@h/");
  EXPECT_EQ(redacted["not-a-url"], "user:pass@host");
  EXPECT_EQ(redacted.dump().find("wJalrXUtnFEMI"), std::string::npos);
  EXPECT_EQ(redacted.dump().find("hunter2"), std::string::npos);
}

}  // namespace
}  // namespace cruncher::cli
