#include "core/template.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "core/job.h"
#include "core/job_name.h"
#include "core/task.h"

namespace cruncher {
namespace {

using nlohmann::json;

// Every JSON pointer of a tree, leaves and inner nodes.
void CollectPointers(const json& node, const std::string& pointer,
                     std::set<std::string>* out) {
  out->insert(pointer);
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      std::string token;
      for (char c : key) {
        if (c == '~')
          token += "~0";
        else if (c == '/')
          token += "~1";
        else
          token.push_back(c);
      }
      CollectPointers(value, pointer + "/" + token, out);
    }
  } else if (node.is_array()) {
    for (size_t i = 0; i < node.size(); ++i) {
      CollectPointers(node[i], pointer + "/" + std::to_string(i), out);
    }
  }
}

std::set<std::string> Pointers(const json& tree) {
  std::set<std::string> out;
  CollectPointers(tree, "", &out);
  return out;
}

constexpr const char* kTemplate = R"yaml(
apiVersion: batch/v1
kind: Job
metadata:
  generateName: demo-
  labels:
    team: $team
  annotations:
    msg-key: "${msg}"
    price: 'cost $$5 and $$msg'
spec:
  backoffLimit: $retries
  activeDeadlineSeconds: ${deadline}
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: worker
        image: busybox
        command: ["sh", "-c", "echo $msg; echo $(HOME)"]
        args:
        - $msg
        - "prefix-${msg}-suffix"
        - 'single $msg'
        env:
        - name: MSG
          value: $msg
        - name: QUOTED
          value: "$retries"
        - name: PRICE
          value: 'cost $$5 and $$msg'
)yaml";

JobTemplate MustParse(std::string_view text) {
  auto t = JobTemplate::Parse(text, "test.yaml");
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

TaskVariables MustVars(const json& body) {
  auto v = TaskVariables::FromBody(body.dump());
  EXPECT_TRUE(v.ok()) << v.status().ToString();
  return std::move(v).value();
}

json MustRender(const JobTemplate& t, const json& body) {
  auto r = t.Render(MustVars(body));
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : json();
}

json BodyWithMsg(const std::string& msg) {
  return {{"msg", msg}, {"team", "blue"}, {"retries", 2}, {"deadline", 60}};
}

TEST(TemplateTest, SubstitutesPlaceholdersInStrings) {
  JobTemplate t = MustParse(kTemplate);
  json job = MustRender(t, BodyWithMsg("hello"));
  const json& c = job["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["command"], json({"sh", "-c", "echo hello; echo $(HOME)"}));
  EXPECT_EQ(c["args"], json({"hello", "prefix-hello-suffix", "single hello"}));
  EXPECT_EQ(c["env"][0]["value"], "hello");
  EXPECT_EQ(job["metadata"]["labels"]["team"], "blue");
}

// The text the kubelet's `$(VAR)` expansion turns back into `value`.
std::string KubeletEscaped(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '$') out.push_back('$');
    out.push_back(c);
  }
  return out;
}

TEST(TemplateTest, DollarDollarIsLiteralDollar) {
  JobTemplate t = MustParse(kTemplate);
  json job = MustRender(t, BodyWithMsg("x"));
  EXPECT_EQ(job["metadata"]["annotations"]["price"], "cost $5 and $msg");
  // In a field the kubelet expands, it reduces the pair itself: the process
  // sees "cost $5 and $msg" too.
  EXPECT_EQ(job["spec"]["template"]["spec"]["containers"][0]["env"][2]["value"],
            "cost $$5 and $$msg");
}

TEST(TemplateTest, KubernetesEnvReferencesArePreserved) {
  auto vars = MustVars({{"A", "a"}});
  auto s = SubstitutePlaceholders("$(HOME) $(A) $( $ end$", vars);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, "$(HOME) $(A) $( $ end$");
}

TEST(TemplateTest, BraceForm) {
  auto vars = MustVars({{"name", "N"}, {"name_x", "WRONG"}});
  auto s = SubstitutePlaceholders("${name}_x $name_x ${name}${name}", vars);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, "N_x WRONG NN");
}

TEST(TemplateTest, UnterminatedOrInvalidBraceIsAnError) {
  auto vars = MustVars({{"a", "1"}});
  auto unterminated = SubstitutePlaceholders("x ${a", vars);
  ASSERT_FALSE(unterminated.ok());
  EXPECT_EQ(unterminated.status().code(), StatusCode::kInvalidArgument);
  auto invalid = SubstitutePlaceholders("${1a}", vars);
  ASSERT_FALSE(invalid.ok());
  EXPECT_EQ(invalid.status().code(), StatusCode::kInvalidArgument);
}

TEST(TemplateTest, MissingVariableIsAnErrorNamingIt) {
  JobTemplate t = MustParse(kTemplate);
  json body = BodyWithMsg("x");
  body.erase("team");
  auto r = t.Render(MustVars(body));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("\"team\""), std::string::npos)
      << r.status().message();
  // It says where, too.
  EXPECT_NE(r.status().message().find("/metadata/labels/team"),
            std::string::npos)
      << r.status().message();

  auto s = SubstitutePlaceholders("${missing_one}", MustVars(json::object()));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("missing_one"), std::string::npos);
}

TEST(TemplateTest, MissingVariableInBraceFormAlsoFails) {
  JobTemplate t = MustParse(kTemplate);
  json body = BodyWithMsg("x");
  body.erase("deadline");
  auto r = t.Render(MustVars(body));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"deadline\""), std::string::npos);
}

TEST(TemplateTest, LonePlaceholderTakesNumberAndBoolType) {
  JobTemplate t = MustParse(R"(
kind: Job
spec:
  backoffLimit: $retries
  activeDeadlineSeconds: ${deadline}
  suspend: $flag
  ratio: $ratio
  quoted: "$retries"
  single: '$flag'
  text: $word
  numeric_text: $numeric_text
  obj: $obj
  nothing: $nothing
  template:
    spec:
      containers: [{name: c, command: ["true"]}]
)");
  json job = MustRender(t, {{"retries", 3},
                            {"deadline", 60},
                            {"flag", true},
                            {"ratio", 0.5},
                            {"word", "hello"},
                            {"numeric_text", "42"},
                            {"obj", {{"a", 1}}},
                            {"nothing", nullptr}});
  const json& spec = job["spec"];
  EXPECT_EQ(spec["backoffLimit"], json(3));
  EXPECT_TRUE(spec["backoffLimit"].is_number_integer());
  EXPECT_EQ(spec["activeDeadlineSeconds"], json(60));
  EXPECT_EQ(spec["suspend"], json(true));
  EXPECT_TRUE(spec["ratio"].is_number_float());
  EXPECT_DOUBLE_EQ(spec["ratio"].get<double>(), 0.5);
  // Quoted scalars stay strings.
  EXPECT_EQ(spec["quoted"], json("3"));
  EXPECT_EQ(spec["single"], json("true"));
  // String values stay strings, even when they look like numbers.
  EXPECT_EQ(spec["text"], json("hello"));
  EXPECT_EQ(spec["numeric_text"], json("42"));
  // Only numbers and booleans are typed; the rest is JSON text.
  EXPECT_EQ(spec["obj"], json("{\"a\":1}"));
  EXPECT_EQ(spec["nothing"], json("null"));
}

TEST(TemplateTest, JsonTemplateQuotedPlaceholdersStayStrings) {
  JobTemplate t = MustParse(R"({"kind": "Job", "metadata": {"name": "j"},
    "spec": {"backoffLimit": "$n", "template": {"spec": {"containers": [
      {"name": "c", "command": ["echo", "$n"]}]}}}})");
  json job = MustRender(t, {{"n", 4}});
  EXPECT_EQ(job["spec"]["backoffLimit"], json("4"));
  EXPECT_EQ(t.name_prefix(), "j-");
}

TEST(TemplateTest, NonPlaceholderScalarsKeepTheirYamlTypes) {
  JobTemplate t = MustParse(kTemplate);
  EXPECT_EQ(t.manifest()["spec"]["template"]["spec"]["restartPolicy"], "Never");
  JobTemplate t2 = MustParse(R"(
kind: Job
spec:
  parallelism: 1
  ratio: 1.5
  on: true
  off: null
  version: "1"
  template: {spec: {containers: [{name: c}]}}
)");
  const json& spec = t2.manifest()["spec"];
  EXPECT_EQ(spec["parallelism"], json(1));
  EXPECT_EQ(spec["ratio"], json(1.5));
  EXPECT_EQ(spec["on"], json(true));
  EXPECT_TRUE(spec["off"].is_null());
  EXPECT_EQ(spec["version"], json("1"));
}

// Finding 8: a placeholder in a key used to stay literal, and every
// message's Job was then rejected by the API server (and dead-lettered).
TEST(TemplateTest, APlaceholderInAKeyIsAnErrorNamingItAndWhere) {
  struct Case {
    const char* yaml;
    const char* expect;
  };
  const Case cases[] = {
      {"annotations: {$target: v}",
       "found $target in a key at /metadata/annotations"},
      {"labels: {cruncher.dev/$outcome: x}",
       "found $outcome in a key at /metadata/labels"},
      {"labels: {\"${team}\": x}",
       "found ${team} in a key at /metadata/labels"},
      {"labels: {\"a-${team\": x}", "found ${team in a key"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.yaml);
    auto t = JobTemplate::Parse(
        std::string("kind: Job\nmetadata: {") + c.yaml +
            "}\nspec: {template: {spec: {containers: [{name: c}]}}}\n",
        "keys.yaml");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(
                  "placeholders are only substituted in values"),
              std::string::npos)
        << t.status().message();
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos)
        << t.status().message();
    EXPECT_NE(t.status().message().find("keys.yaml"), std::string::npos);
  }
}

TEST(TemplateTest, KeysWithoutPlaceholdersAreKeptVerbatim) {
  JobTemplate t = MustParse(
      "kind: Job\nmetadata: {annotations: {a$$b: x, c$: y, d$(E): z}}\n"
      "spec: {template: {spec: {containers: [{name: c}]}}}\n");
  json job = MustRender(t, BodyWithMsg("m"));
  const json& ann = job["metadata"]["annotations"];
  EXPECT_EQ(ann, json({{"a$$b", "x"}, {"c$", "y"}, {"d$(E)", "z"}}));
}

// Finding 8: only the first document was used, the rest silently ignored.
TEST(TemplateTest, ASecondDocumentIsAnErrorNamingTheFile) {
  const std::string job =
      "kind: Job\nspec: {template: {spec: {containers: [{name: c}]}}}\n";
  auto t = JobTemplate::Parse(job + "---\n" + job, "two.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("template two.yaml: holds 2 YAML "
                                      "documents"),
            std::string::npos)
      << t.status().message();
  // Empty documents around the manifest are not a second one.
  EXPECT_TRUE(JobTemplate::Parse("---\n" + job + "---\n", "one.yaml").ok());
}

// Finding 9: std::stod threw std::out_of_range out of Parse (an abort at
// start-up of watch and local serve).
TEST(TemplateTest, AFloatOutOfADoublesRangeIsAnErrorNamingIt) {
  for (const std::string number :
       {"1e999", "-1e999", "1e-99999", "1e-310", "123456789e400"}) {
    SCOPED_TRACE(number);
    auto t = JobTemplate::Parse(
        "kind: Job\nspec:\n  backoffLimit: " + number +
            "\n  template: {spec: {containers: [{name: c}]}}\n",
        "float.yaml");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(
        t.status().message().find("template float.yaml: the number " + number +
                                  " at /spec/backoffLimit is out of "
                                  "the range of a double"),
        std::string::npos)
        << t.status().message();
  }
  // Quoted, it is text; in range, a number; an integer past 64 bits text.
  JobTemplate t = MustParse(
      "kind: Job\nspec: {a: '1e999', b: 1e308, c: 2.5e-308, "
      "d: 99999999999999999999, e: -9223372036854775808, f: +7, "
      "template: {spec: {containers: [{name: c}]}}}\n");
  const json& spec = t.manifest()["spec"];
  EXPECT_EQ(spec["a"], json("1e999"));
  EXPECT_EQ(spec["b"], json(1e308));
  EXPECT_EQ(spec["c"], json(2.5e-308));
  EXPECT_EQ(spec["d"], json("99999999999999999999"));
  EXPECT_EQ(spec["e"], json(INT64_MIN));
  EXPECT_EQ(spec["f"], json(7));
}

TEST(TemplateTest, NumbersBoolsObjectsArraysNullAsTextInsideStrings) {
  auto vars = MustVars({{"i", 42},
                        {"neg", -7},
                        {"f", 1.5},
                        {"t", true},
                        {"fa", false},
                        {"n", nullptr},
                        {"o", {{"k", "v"}, {"n", 1}}},
                        {"a", json::array({1, "two", nullptr})},
                        {"big", 12345678901234LL}});
  auto s = SubstitutePlaceholders("$i|$neg|$f|$t|$fa|$n|$o|$a|$big", vars);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s,
            "42|-7|1.5|true|false|null|{\"k\":\"v\",\"n\":1}|[1,\"two\",null]|"
            "12345678901234");
}

TEST(TemplateTest, ValuesAreNotRescanned) {
  auto vars = MustVars({{"v", "$other ${other} $$ $(X)"}, {"other", "NO"}});
  auto s = SubstitutePlaceholders("[$v]", vars);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, "[$other ${other} $$ $(X)]");
}

// Values that would change the structure of a text-substituted manifest
// (the seed's envsubst) stay inside their string scalar here.
TEST(TemplateTest, NoValueChangesTheManifestStructure) {
  JobTemplate t = MustParse(kTemplate);
  const std::set<std::string> expected = Pointers(t.manifest());
  const std::vector<std::string> nasty = {
      "it's \"quoted\" 'single'",
      "line1\nline2\n  indented: yes\n- item",
      "$(rm -rf /) `id` $((1+1))",
      "key: value",
      "# comment",
      "- dash",
      "{a: 1, b: [2]}",
      "{}",
      "[]",
      "[1, 2, {x: y}]",
      "&anchor value",
      "*alias",
      "!!tag value",
      "!!map {}",
      "---\nkind: Pod\n---",
      "...",
      "| block\n  scalar",
      "> folded",
      "\"unbalanced",
      "'unbalanced",
      "%YAML 1.2",
      "@at `back`",
      "tab\there",
      "null",
      "true",
      "123",
      "~",
      "",
      "\\u0000 \\\" backslashes \\",
      "a$$b $(API_TOKEN) $$(HOME) ${msg} $msg $ $",
      "unicode: h\xC3\xA9llo \xF0\x9F\x8C\x8D",
      std::string(2 * 1024 * 1024, 'x'),
      std::string(100000, '\n') + ": -",
  };
  for (const auto& value : nasty) {
    SCOPED_TRACE(::testing::Message()
                 << "value (first 40 bytes): " << value.substr(0, 40));
    json job = MustRender(t, BodyWithMsg(value));
    EXPECT_EQ(Pointers(job), expected);
    const json& c = job["spec"]["template"]["spec"]["containers"][0];
    // The value arrives verbatim, as a string, wherever it was placed: in
    // the fields the kubelet expands, in the form it expands to the value.
    EXPECT_EQ(job["metadata"]["annotations"]["msg-key"], json(value));
    const std::string escaped = KubeletEscaped(value);
    EXPECT_EQ(c["args"][0], json(escaped));
    EXPECT_EQ(c["args"][1], json("prefix-" + escaped + "-suffix"));
    EXPECT_EQ(c["env"][0]["value"], json(escaped));
    EXPECT_EQ(c["command"][2], json("echo " + escaped + "; echo $(HOME)"));
    EXPECT_EQ(job["kind"], "Job");
    EXPECT_EQ(job["spec"]["backoffLimit"], json(2));
  }
}

// Defect 13: the kubelet (and the local executor, alike) expands `$(VAR)`
// and reduces `$$` in these fields after rendering; values are escaped there
// so that the process sees them verbatim, and only there.
TEST(TemplateTest, ValuesInFieldsTheKubeletExpandsAreEscaped) {
  JobTemplate t = MustParse(R"yaml(
kind: Job
metadata:
  labels: {v: "$v"}
  annotations: {v: "$v"}
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: "img-$v"
        command: ["sh", "-c", "echo $v"]
        args: ["$v"]
        env: [{name: INIT, value: "$v"}]
      containers:
      - name: main
        image: busybox
        workingDir: "/work/$v"
        command: ["run", "$v"]
        args: ["--value=${v}", "$(API_TOKEN)", "$$(API_TOKEN)", "$$$v"]
        env:
        - {name: API_TOKEN, value: "s3cret"}
        - {name: V, value: "$v"}
        - {name: FROM, valueFrom: {fieldRef: {fieldPath: "$v"}}}
        volumeMounts:
        - {name: data, mountPath: "/data/$v", subPathExpr: "$v"}
        livenessProbe: {exec: {command: ["check", "$v"]}}
      - name: sidecar
        image: busybox
        args: ["$v"]
)yaml");
  for (const std::string v : {"a$$b", "$(API_TOKEN)", "(API_TOKEN)", "$"}) {
    SCOPED_TRACE(v);
    json job = MustRender(t, {{"v", v}});
    const std::string e = KubeletEscaped(v);
    const json& pod = job["spec"]["template"]["spec"];
    const json& init = pod["initContainers"][0];
    EXPECT_EQ(init["command"], json({"sh", "-c", "echo " + e}));
    EXPECT_EQ(init["args"], json({e}));
    EXPECT_EQ(init["env"][0]["value"], e);
    const json& main = pod["containers"][0];
    EXPECT_EQ(main["command"], json({"run", e}));
    // The template's own references and `$$` stay for the kubelet; the
    // literal `$` a template writes before a value cannot pair with it.
    EXPECT_EQ(main["args"], json({"--value=" + e, "$(API_TOKEN)",
                                  "$$(API_TOKEN)", "$$" + e}));
    EXPECT_EQ(main["env"][0]["value"], "s3cret");
    EXPECT_EQ(main["env"][1]["value"], e);
    EXPECT_EQ(main["volumeMounts"][0]["subPathExpr"], e);
    EXPECT_EQ(pod["containers"][1]["args"], json({e}));
    // Fields the kubelet does not expand take the value verbatim.
    EXPECT_EQ(job["metadata"]["labels"]["v"], v);
    EXPECT_EQ(job["metadata"]["annotations"]["v"], v);
    EXPECT_EQ(init["image"], "img-" + v);
    EXPECT_EQ(main["workingDir"], "/work/" + v);
    EXPECT_EQ(main["env"][2]["valueFrom"]["fieldRef"]["fieldPath"], v);
    EXPECT_EQ(main["volumeMounts"][0]["mountPath"], "/data/" + v);
    EXPECT_EQ(main["livenessProbe"]["exec"]["command"], json({"check", v}));
  }
}

TEST(TemplateTest, KubeletExpansionModeOfOneString) {
  auto vars = MustVars({{"v", "$(A)$$"}, {"n", 5}});
  auto s = SubstitutePlaceholders("x $v $$ $(HOME) ${v} $n $", vars,
                                  FieldExpansion::kKubelet);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(*s, "x $$(A)$$$$ $$ $(HOME) $$(A)$$$$ 5 $");
  auto plain = SubstitutePlaceholders("x $v $$ $(HOME) ${v} $n $", vars);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(*plain, "x $(A)$$ $ $(HOME) $(A)$$ 5 $");
}

// Defect 14: a NUL would cut the value short in argv or the environment.
TEST(TemplateTest, NulInASubstitutedValueIsAnErrorNamingIt) {
  JobTemplate t = MustParse(kTemplate);
  auto r = t.Render(MustVars(BodyWithMsg(std::string("a\0b", 3))));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      r.status().message().find("value of 'msg' contains a NUL character"),
      std::string::npos)
      << r.status().message();
  Message m{
      "id", R"({"msg": "a\u0000b", "team": "t", "retries": 1,
                     "deadline": 2})", "h", 1, 0, 0,
      {}};
  auto rendered = t.RenderForMessage(m, "q");
  ASSERT_FALSE(rendered.ok());
  EXPECT_NE(rendered.status().message().find("'msg'"), std::string::npos);
  // A NUL the template never places, or one inside an object (written as
  // JSON text, \u0000), is harmless.
  json unused = BodyWithMsg("ok");
  unused["extra"] = std::string("a\0b", 3);
  EXPECT_TRUE(t.Render(MustVars(unused)).ok());
  auto nested = SubstitutePlaceholders(
      "$o", MustVars({{"o", {{"k", std::string("a\0b", 3)}}}}));
  ASSERT_TRUE(nested.ok()) << nested.status().ToString();
  EXPECT_EQ(*nested, "{\"k\":\"a\\u0000b\"}");
}

TEST(TemplateTest, StructureUnchangedForWholeTemplateWithStringValues) {
  // Every variable a nasty string: the typed slots become strings, but no
  // node appears or disappears.
  JobTemplate t = MustParse(kTemplate);
  json body = {{"msg", "a: b\n- c"},
               {"team", "{x: 1}"},
               {"retries", "[1]"},
               {"deadline", "---"}};
  json job = MustRender(t, body);
  EXPECT_EQ(Pointers(job), Pointers(t.manifest()));
  EXPECT_EQ(job["spec"]["backoffLimit"], json("[1]"));
  EXPECT_EQ(job["spec"]["activeDeadlineSeconds"], json("---"));
}

TEST(TemplateTest, RejectsTemplatesWithClearMessages) {
  struct Case {
    const char* text;
    const char* expect;
  };
  const Case cases[] = {
      {"- a\n- b\n", "must be a mapping"},
      {"just a string", "must be a mapping"},
      {"kind: Pod\nspec: {template: {spec: {containers: [{name: c}]}}}\n",
       "kind must be Job"},
      {"apiVersion: batch/v1\nspec: {}\n", "kind must be Job"},
      {"kind: Job\nspec: {template: {spec: {}}}\n", "containers"},
      {"kind: Job\nspec: {template: {spec: {containers: []}}}\n", "containers"},
      {"kind: Job\n", "containers"},
      {"kind: Job\nspec: [unclosed\n", "not valid YAML"},
      {"{\"kind\": \"Job\",", "not valid YAML"},
      {"kind: Job\nmetadata: {generateName: $prefix}\n"
       "spec: {template: {spec: {containers: [{name: c}]}}}\n",
       "placeholders"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.text);
    auto t = JobTemplate::Parse(c.text, "bad.yaml");
    ASSERT_FALSE(t.ok());
    EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.expect), std::string::npos)
        << t.status().message();
    EXPECT_NE(t.status().message().find("bad.yaml"), std::string::npos)
        << t.status().message();
  }
}

TEST(TemplateTest, LoadOfMissingFileIsNotFound) {
  auto t = JobTemplate::Load("/nonexistent/dir/job.yaml");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kNotFound);
  EXPECT_NE(t.status().message().find("/nonexistent/dir/job.yaml"),
            std::string::npos);
}

TEST(TemplateTest, LoadOfDirectoryNamesIt) {
  const std::string dir = ::testing::TempDir();
  auto t = JobTemplate::Load(dir);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find(dir + " is a directory"),
            std::string::npos)
      << t.status().message();
}

TEST(TemplateTest, NamePrefix) {
  EXPECT_EQ(MustParse(kTemplate).name_prefix(), "demo-");
  JobTemplate named = MustParse(
      "kind: Job\nmetadata: {name: My_Job}\n"
      "spec: {template: {spec: {containers: [{name: c}]}}}\n");
  EXPECT_EQ(named.name_prefix(), "my-job-");
  JobTemplate none = MustParse(
      "kind: Job\nspec: {template: {spec: {containers: [{name: c}]}}}\n");
  EXPECT_EQ(none.name_prefix(), "job-");
  // The name fields are not part of the rendered manifest.
  EXPECT_FALSE(named.manifest()["metadata"].contains("name"));
}

bool IsDns1123Label(const std::string& s) {
  static const std::regex kLabel("[a-z0-9]([-a-z0-9]*[a-z0-9])?");
  return s.size() <= 63 && std::regex_match(s, kLabel);
}

bool IsLabelValue(const std::string& s) {
  static const std::regex kValue("([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?");
  return s.size() <= 63 && std::regex_match(s, kValue);
}

TEST(TemplateTest, RenderForMessageSetsNameLabelsAndAnnotations) {
  JobTemplate t = MustParse(kTemplate);
  Message m;
  m.id = "0b7c1d1e-8a57-4a8e-9a57-5c8b1f0e2d3c";
  // Whitespace, key order and unicode must survive verbatim.
  m.body =
      "{ \"msg\" :  \"h\xC3\xA9llo \xF0\x9F\x8C\x8D\\n\",\n\t\"team\": \"x\", "
      "\"retries\": 1, \"deadline\": 5 }  ";
  m.receive_count = 3;
  auto r = t.RenderForMessage(m, "tasks");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const json& md = (*r)["metadata"];
  EXPECT_EQ(md["name"], JobNameFor("demo-", "tasks", m.id));
  EXPECT_TRUE(IsDns1123Label(md["name"].get<std::string>()));
  EXPECT_EQ(md["labels"][std::string(kManagedByLabel)], "cruncher");
  EXPECT_EQ(md["labels"][std::string(kQueueLabel)], "tasks");
  EXPECT_EQ(md["labels"]["team"], "x");  // the template's own labels stay
  EXPECT_EQ(md["annotations"][std::string(kTaskAnnotation)], m.body);
  EXPECT_EQ(md["annotations"][std::string(kMessageIdAnnotation)], m.id);
  EXPECT_EQ(md["annotations"][std::string(kQueueAnnotation)], "tasks");
  EXPECT_EQ(md["annotations"][std::string(kReceiveCountAnnotation)], "3");
  EXPECT_EQ((*r)["apiVersion"], "batch/v1");
  EXPECT_EQ((*r)["spec"]["template"]["spec"]["containers"][0]["args"][0],
            "h\xC3\xA9llo \xF0\x9F\x8C\x8D\n");
  auto job = Job::FromJson(*r);
  ASSERT_TRUE(job.ok());
  EXPECT_TRUE(job->managed_by_cruncher());
  EXPECT_EQ(job->task(), m.body);
}

TEST(TemplateTest, RenderForMessageSanitizesTheQueueLabel) {
  JobTemplate t = MustParse(kTemplate);
  Message m{"id-1", BodyWithMsg("x").dump(), "h", 1, 0, 0, {}};
  const std::string queues[] = {
      "https://sqs.us-east-1.amazonaws.com/123456789012/my-queue",
      std::string(100, 'q'),
      "_weird.Queue-",
      "-" + std::string(70, 'a') + "-",
      "a/b:c d",
  };
  for (const auto& q : queues) {
    SCOPED_TRACE(q);
    auto r = t.RenderForMessage(m, q);
    ASSERT_TRUE(r.ok());
    std::string label = (*r)["metadata"]["labels"][std::string(kQueueLabel)];
    EXPECT_TRUE(IsLabelValue(label)) << label;
    EXPECT_FALSE(label.empty());
    EXPECT_LE(label.size(), 63u);
    // The annotation keeps the full queue name.
    EXPECT_EQ((*r)["metadata"]["annotations"][std::string(kQueueAnnotation)],
              q);
    EXPECT_TRUE(IsDns1123Label((*r)["metadata"]["name"].get<std::string>()));
  }
}

TEST(TemplateTest, RenderForMessageRejectsBadBodies) {
  JobTemplate t = MustParse(kTemplate);
  for (const char* body :
       {"not json", "[1,2]", "\"text\"", "42", "", "{\"msg\":"}) {
    SCOPED_TRACE(body);
    Message m{"id", body, "h", 1, 0, 0, {}};
    auto r = t.RenderForMessage(m, "q");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  }
  Message missing{"id", "{\"msg\": \"x\"}", "h", 1, 0, 0, {}};
  auto r = t.RenderForMessage(missing, "q");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("team"), std::string::npos);
}

TEST(TemplateTest, RenderingDoesNotChangeTheTemplate) {
  JobTemplate t = MustParse(kTemplate);
  // A text copy: comparing against a reference to the manifest could not fail.
  const std::string before = t.manifest().dump();
  (void)MustRender(t, BodyWithMsg("a"));
  EXPECT_EQ(t.manifest().dump(), before);
}

// The start-up dry run (attack finding 8) sends the template as is, and
// tells the fields the messages fill from the template's own.
TEST(TemplateTest, SampleManifestAndFieldsFilledByMessages) {
  auto t = JobTemplate::Parse(R"yaml(
apiVersion: batch/v1
kind: Job
metadata:
  generateName: work-
  labels: {team: $team, fixed: yes}
spec:
  backoffLimit: $retries
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: $cname
        image: busybox
        command: ["echo", "$$HOME", "$(VAR)", "${n}"]
)yaml",
                              "job.yaml");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_TRUE(t->has_typed_placeholders());
  const nlohmann::json numbers = t->SampleManifest(true);
  EXPECT_EQ(numbers["metadata"]["name"], "work-0000000000");
  EXPECT_EQ(numbers["spec"]["backoffLimit"], 1);  // lone placeholders
  EXPECT_EQ(numbers["spec"]["template"]["spec"]["containers"][0]["name"], 1);
  EXPECT_EQ(numbers["metadata"]["labels"]["team"], 1);
  EXPECT_EQ(numbers["spec"]["template"]["spec"]["containers"][0]["command"][3],
            "${n}");  // inside a string: text
  EXPECT_FALSE(numbers["metadata"].contains("generateName"));
  const nlohmann::json text = t->SampleManifest(false);
  EXPECT_EQ(text["spec"]["backoffLimit"], "$retries");
  EXPECT_EQ(text["spec"]["template"]["spec"]["containers"][0]["name"],
            "$cname");
  EXPECT_TRUE(t->FilledByMessage("spec.template.spec.containers[0].name"));
  EXPECT_TRUE(t->FilledByMessage("metadata.labels"));
  EXPECT_TRUE(t->FilledByMessage("metadata.labels.team"));
  EXPECT_TRUE(
      t->FilledByMessage("spec.template.spec.containers[0].command[3]"));
  EXPECT_TRUE(t->FilledByMessage("spec.template"));  // something under it
  EXPECT_TRUE(t->FilledByMessage("metadata.labels[team]"));  // a map's key
  EXPECT_FALSE(t->FilledByMessage("metadata.labels[fixed]"));
  EXPECT_FALSE(t->FilledByMessage("metadata.labels[nope]"));
  // The template's own: literal `$$` and `$(VAR)`, missing fields, odd paths.
  EXPECT_FALSE(t->FilledByMessage("metadata.labels.fixed"));
  EXPECT_FALSE(
      t->FilledByMessage("spec.template.spec.containers[0].command[1]"));
  EXPECT_FALSE(
      t->FilledByMessage("spec.template.spec.containers[0].command[2]"));
  EXPECT_FALSE(t->FilledByMessage("spec.template.spec.restartPolicy"));
  EXPECT_FALSE(t->FilledByMessage("spec.template.spec.activeDeadlineSeconds"));
  for (const char* odd :
       {"", "[", "spec[0]", "spec.template.spec.containers[",
        "spec.template.spec.containers[x]",
        "spec.template.spec.containers[99999999999]",
        "spec.template.spec.containers[1].name", "..", "a.[0]"}) {
    (void)t->FilledByMessage(odd);
  }
  EXPECT_FALSE(t->FilledByMessage("spec.template.spec.containers[1].name"));
}

}  // namespace
}  // namespace cruncher
