#include "aws/sigv4.h"

#include <gtest/gtest.h>

#include <vector>

#include "aws/encoding.h"

namespace cruncher::aws {
namespace {

AwsCredentials ExampleCredentials() {
  AwsCredentials c;
  c.access_key_id = "AKIDEXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  return c;
}

constexpr Millis k20150830T123600Z = 1440938160000;

// The "get-vanilla" case of the AWS SigV4 test suite.
TEST(SigV4Test, MatchesAwsTestSuiteGetVanilla) {
  net::HttpRequest request;
  request.method = "GET";
  request.url = "https://example.amazonaws.com/";
  auto parts = SignV4(request, ExampleCredentials(), "service", "us-east-1",
                      k20150830T123600Z);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ(parts->authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/"
            "service/aws4_request, SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1"
            "d763fbf31");
  bool has_date = false;
  for (const auto& [k, v] : request.headers) {
    if (k == "X-Amz-Date") has_date = v == "20150830T123600Z";
  }
  EXPECT_TRUE(has_date);
}

TEST(SigV4Test, SessionTokenIsAddedAndSigned) {
  net::HttpRequest request;
  request.url = "https://sqs.eu-west-1.amazonaws.com/";
  request.body = "{}";
  AwsCredentials creds = ExampleCredentials();
  creds.session_token = "session-token-value";
  auto parts = SignV4(request, creds, "sqs", "eu-west-1", k20150830T123600Z);
  ASSERT_TRUE(parts.ok());
  EXPECT_EQ(parts->signed_headers, "host;x-amz-date;x-amz-security-token");
  int tokens = 0;
  for (const auto& [k, v] : request.headers) {
    if (k == "X-Amz-Security-Token" && v == "session-token-value") ++tokens;
  }
  EXPECT_EQ(tokens, 1);
}

TEST(SigV4Test, ResigningReplacesPreviousSignatureHeaders) {
  net::HttpRequest request;
  request.url = "http://127.0.0.1:9324/";
  AwsCredentials creds = ExampleCredentials();
  creds.session_token = "t";
  ASSERT_TRUE(
      SignV4(request, creds, "sqs", "us-east-1", k20150830T123600Z).ok());
  auto second =
      SignV4(request, creds, "sqs", "us-east-1", k20150830T123600Z + 1000);
  ASSERT_TRUE(second.ok());
  int auth = 0, date = 0, token = 0;
  for (const auto& [k, v] : request.headers) {
    auth += k == "Authorization";
    date += k == "X-Amz-Date";
    token += k == "X-Amz-Security-Token";
  }
  EXPECT_EQ(auth, 1);
  EXPECT_EQ(date, 1);
  EXPECT_EQ(token, 1);
  EXPECT_NE(second->canonical_request.find("host:127.0.0.1:9324\n"),
            std::string::npos);
}

TEST(SigV4Test, EmptyCredentialsFailWithoutLeakingAnything) {
  net::HttpRequest request;
  request.url = "https://sqs.us-east-1.amazonaws.com/";
  AwsCredentials creds;
  creds.access_key_id = "AKIAONLY";
  auto parts = SignV4(request, creds, "sqs", "us-east-1", 0);
  ASSERT_FALSE(parts.ok());
  EXPECT_EQ(parts.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(parts.status().message().find("AKIAONLY"), std::string::npos);
}

TEST(EncodingTest, ParseUrl) {
  auto u = ParseUrl("HTTPS://User@SQS.us-east-1.AmazonAWS.com:443/123/q?a=b");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->scheme, "https");
  EXPECT_EQ(u->host, "sqs.us-east-1.amazonaws.com");
  EXPECT_EQ(u->port, 443);
  EXPECT_EQ(u->path, "/123/q");
  EXPECT_EQ(u->query, "a=b");
  EXPECT_EQ(u->HostHeader(), "sqs.us-east-1.amazonaws.com");
  EXPECT_EQ(u->Origin(), "https://sqs.us-east-1.amazonaws.com:443");
  auto v6 = ParseUrl("http://[::1]:9324");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->HostHeader(), "[::1]:9324");
  EXPECT_FALSE(ParseUrl("ftp://x").ok());
  EXPECT_FALSE(ParseUrl("http://:80/").ok());
  EXPECT_FALSE(ParseUrl("http://h:99999/").ok());
}

TEST(EncodingTest, TimestampsAndBase64) {
  EXPECT_EQ(*ParseIso8601("2015-08-30T12:36:00Z"), k20150830T123600Z);
  EXPECT_EQ(*ParseIso8601("2015-08-30T12:36:00.250Z"), k20150830T123600Z + 250);
  EXPECT_EQ(*ParseIso8601("2015-08-30T14:36:00+02:00"), k20150830T123600Z);
  EXPECT_FALSE(ParseIso8601("yesterday").ok());
  EXPECT_EQ(*ParseHttpDate("Sun, 30 Aug 2015 12:36:00 GMT"), k20150830T123600Z);
  EXPECT_EQ(FormatAmzDate(k20150830T123600Z), "20150830T123600Z");
  for (const std::string& s : std::vector<std::string>{
           "", "a", "ab", "abc", std::string("\0\xff\x10", 3)}) {
    EXPECT_EQ(*Base64Decode(Base64Encode(s)), s);
  }
  EXPECT_FALSE(Base64Decode("abc").ok());
  EXPECT_EQ(PercentEncode("a b/ü~", "/"), "a%20b/%C3%BC~");
}

}  // namespace
}  // namespace cruncher::aws
