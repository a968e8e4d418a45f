#include "aws/sts.h"

#include <charconv>
#include <chrono>
#include <random>
#include <thread>

#include "aws/encoding.h"
#include "aws/retry.h"
#include "aws/sigv4.h"

namespace cruncher::aws {
namespace {

constexpr std::string_view kVersion = "2011-06-15";

std::string DecodeEntities(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    std::size_t semi = s.find(';', i);
    if (semi == std::string_view::npos) {
      out += s.substr(i);
      break;
    }
    std::string_view entity = s.substr(i + 1, semi - i - 1);
    if (entity == "amp")
      out += '&';
    else if (entity == "lt")
      out += '<';
    else if (entity == "gt")
      out += '>';
    else if (entity == "quot")
      out += '"';
    else if (entity == "apos")
      out += '\'';
    else if (entity.size() > 1 && entity[0] == '#') {
      bool hex = entity[1] == 'x' || entity[1] == 'X';
      std::string_view digits = entity.substr(hex ? 2 : 1);
      unsigned long cp = 0;
      auto [ptr, ec] = std::from_chars(
          digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      bool valid = ec == std::errc() && ptr == digits.data() + digits.size();
      out += valid && cp < 0x80 ? static_cast<char>(cp) : '?';
    } else {
      out += s.substr(i, semi - i + 1);
    }
    i = semi;
  }
  return out;
}

Result<AwsCredentials> ParseCredentials(const std::string& xml,
                                        const std::string& source) {
  std::optional<std::string> block = XmlElementText(xml, "Credentials");
  if (!block) {
    return Internal("STS response from " + source + " has no <Credentials>");
  }
  AwsCredentials creds;
  creds.access_key_id = XmlElementText(*block, "AccessKeyId").value_or("");
  creds.secret_access_key =
      XmlElementText(*block, "SecretAccessKey").value_or("");
  creds.session_token = XmlElementText(*block, "SessionToken").value_or("");
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return Internal("STS response from " + source + " lacks keys");
  }
  if (auto exp = XmlElementText(*block, "Expiration")) {
    CRUNCHER_ASSIGN_OR_RETURN(creds.expiration, ParseIso8601(*exp));
  }
  creds.source = source;
  return creds;
}

}  // namespace

std::optional<std::string> XmlElementText(std::string_view xml,
                                          std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">";
  const std::string close = "</" + std::string(tag) + ">";
  std::size_t b = xml.find(open);
  if (b == std::string_view::npos) return std::nullopt;
  b += open.size();
  std::size_t e = xml.find(close, b);
  if (e == std::string_view::npos) return std::nullopt;
  // Nested elements are returned raw; leaf text is entity-decoded.
  std::string_view inner = xml.substr(b, e - b);
  if (inner.find('<') != std::string_view::npos) return std::string(inner);
  return DecodeEntities(inner);
}

Result<AwsCredentials> StsClient::AssumeRoleWithWebIdentity(
    const std::string& role_arn, const std::string& session,
    const std::string& token) {
  std::string body = FormEncode({{"Action", "AssumeRoleWithWebIdentity"},
                                 {"Version", kVersion},
                                 {"RoleArn", role_arn},
                                 {"RoleSessionName", session},
                                 {"WebIdentityToken", token}});
  return Call("AssumeRoleWithWebIdentity " + role_arn, body, nullptr, 0);
}

Result<AwsCredentials> StsClient::AssumeRole(
    const std::string& role_arn, const std::string& session,
    const std::optional<std::string>& external_id,
    std::optional<int> duration_seconds, const AwsCredentials& source,
    Millis now) {
  std::string body = FormEncode({{"Action", "AssumeRole"},
                                 {"Version", kVersion},
                                 {"RoleArn", role_arn},
                                 {"RoleSessionName", session}});
  if (external_id) body += "&" + FormEncode({{"ExternalId", *external_id}});
  if (duration_seconds) {
    body += "&DurationSeconds=" + std::to_string(*duration_seconds);
  }
  return Call("AssumeRole " + role_arn, body, &source, now);
}

Result<AwsCredentials> StsClient::Call(const std::string& action,
                                       const std::string& body,
                                       const AwsCredentials* signer,
                                       Millis now) {
  const std::string what = "sts " + action + " at " + endpoint_;
  RetryPolicy policy;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  Status last;
  for (int attempt = 1; attempt <= policy.max_attempts; ++attempt) {
    if (attempt > 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(
          BackoffDelay(policy, attempt - 1, jitter(rng))));
    }
    net::HttpRequest request;
    request.method = "POST";
    request.url = endpoint_;
    if (request.url.find('/', request.url.find("://") + 3) ==
        std::string::npos) {
      request.url += "/";
    }
    request.headers = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    request.body = body;
    request.timeout_ms = 10000;
    if (signer != nullptr) {
      auto signed_parts = SignV4(request, *signer, "sts", region_, now);
      if (!signed_parts.ok()) return signed_parts.status().WithContext(what);
    }
    net::HttpOutcome outcome = transport_->Send(request);
    if (!outcome.status.ok()) {
      last = outcome.status.WithContext(what);
      continue;
    }
    const net::HttpResponse& r = outcome.response;
    if (r.status == 200) {
      auto creds = ParseCredentials(r.body, "sts " + action);
      if (!creds.ok()) return creds.status();
      return creds;
    }
    std::string code = XmlElementText(r.body, "Code").value_or("");
    std::string message = XmlElementText(r.body, "Message").value_or("");
    last = Status(StatusCodeForError(r.status, code),
                  what + ": HTTP " + std::to_string(r.status) + " " + code +
                      (message.empty() ? "" : ": " + message));
    if (ClassifyError(r.status, code, message) == ErrorClass::kNonRetryable) {
      return last;
    }
  }
  return last;
}

}  // namespace cruncher::aws
