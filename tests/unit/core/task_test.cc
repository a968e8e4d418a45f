#include "core/task.h"

#include <gtest/gtest.h>

namespace cruncher {
namespace {

using nlohmann::json;

TEST(TaskVariablesTest, RejectsBodiesThatAreNotJsonObjects) {
  for (const char* body : {"", "not json", "{", "{\"a\":}", "[1, 2]", "[]",
                           "\"a string\"", "42", "true", "null", "{} extra"}) {
    SCOPED_TRACE(body);
    auto v = TaskVariables::FromBody(body);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
  }
  auto array = TaskVariables::FromBody("[1]");
  EXPECT_NE(array.status().message().find("array"), std::string::npos)
      << array.status().message();
}

// Regression (issue 8, defect 10): a body nested 100,000 levels deep
// overflowed the stack while its variables were copied.
TEST(TaskVariablesTest, RejectsBodiesNestedTooDeeply) {
  const std::string deep =
      "{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  auto v = TaskVariables::FromBody(deep);
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(v.status().message().rfind(
                "message body: JSON is nested deeper than the limit of 128", 0),
            0u)
      << v.status().message();
}

TEST(TaskVariablesTest, FindsTopLevelKeys) {
  auto v = TaskVariables::FromBody(R"({"a": "x", "b": {"c": 1}})");
  ASSERT_TRUE(v.ok());
  ASSERT_NE(v->Find("a"), nullptr);
  EXPECT_EQ(*v->Find("a"), json("x"));
  ASSERT_NE(v->Find("b"), nullptr);
  EXPECT_EQ(v->Find("c"), nullptr);  // nested keys are not variables
  EXPECT_EQ(v->Find("missing"), nullptr);
  auto empty = TaskVariables::FromBody("{}");
  EXPECT_TRUE(empty.ok());
}

TEST(TaskVariablesTest, TextOfEachType) {
  EXPECT_EQ(TaskVariables::Text(json("s p\"q")), "s p\"q");
  EXPECT_EQ(TaskVariables::Text(json(3)), "3");
  EXPECT_EQ(TaskVariables::Text(json(-3.25)), "-3.25");
  EXPECT_EQ(TaskVariables::Text(json(true)), "true");
  EXPECT_EQ(TaskVariables::Text(json(nullptr)), "null");
  EXPECT_EQ(TaskVariables::Text(json::parse(R"({ "b" : [1, 2] })")),
            R"({"b":[1,2]})");
}

}  // namespace
}  // namespace cruncher
