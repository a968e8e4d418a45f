#include "core/json_limits.h"

#include <gtest/gtest.h>

#include <string>

namespace cruncher {
namespace {

std::string Nested(int levels, char open = '[', char close = ']') {
  return std::string(static_cast<size_t>(levels), open) +
         std::string(static_cast<size_t>(levels), close);
}

TEST(JsonLimitsTest, AcceptsDepthUpToTheLimit) {
  EXPECT_TRUE(CheckJsonDepth("42").ok());
  EXPECT_TRUE(CheckJsonDepth("{}", 1).ok());
  EXPECT_FALSE(CheckJsonDepth("{}", 0).ok());
  EXPECT_TRUE(CheckJsonDepth(Nested(kMaxJsonDepth)).ok());
  EXPECT_TRUE(CheckJsonDepth(R"({"a":[1,{"b":[]}],"c":{}})", 4).ok());
  EXPECT_FALSE(CheckJsonDepth(R"({"a":[1,{"b":[]}],"c":{}})", 3).ok());
  // Siblings do not add up.
  EXPECT_TRUE(CheckJsonDepth("[[],[],[],[],[]]", 2).ok());
}

TEST(JsonLimitsTest, RejectsDeepNestingWithoutRecursing) {
  // 100,000 levels: what crashed `local serve` (issue 8, defect 10).
  for (const std::string& text :
       {Nested(100000), Nested(100000, '{', '}'),
        std::string(100000, '[')}) {  // unterminated, too
    Status s = CheckJsonDepth(text);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("nested deeper than the limit of 128"),
              std::string::npos)
        << s.message();
  }
  EXPECT_FALSE(CheckJsonDepth(Nested(kMaxJsonDepth + 1)).ok());
}

TEST(JsonLimitsTest, BracketsInsideStringsDoNotCount) {
  EXPECT_TRUE(CheckJsonDepth(R"({"a":"[[[[{{{{"})", 1).ok());
  // An escaped quote does not end the string; an escaped backslash does not
  // escape the closing quote.
  EXPECT_TRUE(CheckJsonDepth(R"({"a":"\"[[[["})", 1).ok());
  EXPECT_FALSE(CheckJsonDepth(R"({"a":"\\",[[[[]]]]})", 1).ok());
  EXPECT_TRUE(CheckJsonDepth(R"(["\\", "x"])", 1).ok());
}

TEST(JsonLimitsTest, ParseJsonReportsDepthAndSyntax) {
  auto ok = ParseJson(R"({"a": [1, 2]})");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)["a"][1], 2);

  auto deep = ParseJson(Nested(100000));
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(deep.status().message().find("nested deeper"), std::string::npos);

  auto bad = ParseJson("{\"a\":");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message().rfind("not valid JSON: parse error", 0), 0u)
      << bad.status().message();
}

// Found by attacking the binary: a number beyond a double's range threw
// out_of_range (not a parse_error), which nothing caught: `cruncher status
// --queue-url` aborted, and the endpoint answered a RedrivePolicy with 500.
TEST(JsonLimitsTest, ParseJsonRefusesNumbersBeyondADouble) {
  for (const char* text : {R"({"x": 1e400})", R"({"x": -1e400})"}) {
    auto r = ParseJson(text);
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("number overflow"), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace cruncher

namespace cruncher {
namespace {

TEST(ParseJsonDropping, LeavesOutTheNamedMembersAtAnyDepth) {
  auto parsed = ParseJsonDropping(
      R"({"items":[{"metadata":{"name":"a","managedFields":[{"x":1}]}},)"
      R"({"metadata":{"name":"b"}}],"managedFields":2,"keep":"managedFields"})",
      "managedFields");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*parsed,
            nlohmann::json::parse(
                R"({"items":[{"metadata":{"name":"a"}},)"
                R"({"metadata":{"name":"b"}}],"keep":"managedFields"})"));
}

TEST(ParseJsonDropping, RefusesWhatParseJsonRefuses) {
  EXPECT_FALSE(ParseJsonDropping("{\"a\":", "a").ok());
  EXPECT_FALSE(
      ParseJsonDropping(std::string(200, '[') + std::string(200, ']'), "a")
          .ok());
}

}  // namespace
}  // namespace cruncher
