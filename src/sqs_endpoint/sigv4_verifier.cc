#include "sqs_endpoint/sigv4_verifier.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <string_view>

namespace cruncher::sqs {
namespace {

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr Millis kMaxSkewMillis = 15 * 60 * 1000;

std::string Hex(const unsigned char* data, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[data[i] >> 4]);
    out.push_back(kHex[data[i] & 15]);
  }
  return out;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &len);
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool Unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (Unreserved(c) || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string UriDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
        HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The canonical query string: pairs decoded, re-encoded strictly, sorted.
std::string CanonicalQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> pairs;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    std::string key = UriEncode(UriDecode(item.substr(0, eq)), false);
    std::string value =
        eq == std::string_view::npos ? "" : UriEncode(UriDecode(item.substr(eq + 1)), false);
    pairs.emplace_back(std::move(key), std::move(value));
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out.push_back('&');
    out += k + "=" + v;
  }
  return out;
}

// A header value with outer whitespace trimmed and inner runs collapsed.
std::string CanonicalValue(std::string_view value) {
  value = Trim(value);
  std::string out;
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t') {
      space = true;
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(c);
  }
  return out;
}

// Parses "YYYYMMDDTHHMMSSZ" to epoch milliseconds.
std::optional<Millis> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  for (size_t i = 0; i < 15; ++i) {
    if (i != 8 && !std::isdigit(static_cast<unsigned char>(s[i]))) return std::nullopt;
  }
  auto num = [&](size_t pos, size_t len) {
    return std::stoi(std::string(s.substr(pos, len)));
  };
  std::tm tm{};
  tm.tm_year = num(0, 4) - 1900;
  tm.tm_mon = num(4, 2) - 1;
  tm.tm_mday = num(6, 2);
  tm.tm_hour = num(9, 2);
  tm.tm_min = num(11, 2);
  tm.tm_sec = num(13, 2);
  return static_cast<Millis>(timegm(&tm)) * 1000;
}

AuthResult Fail(int status, std::string code, std::string message) {
  return AuthResult{"", AuthFailure{status, std::move(code), std::move(message)}};
}

}  // namespace

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

AuthResult SigV4Verifier::Verify(const SignedRequest& request, Millis now) const {
  auto header = [&](std::string_view lower_name) -> std::optional<std::string> {
    std::optional<std::string> joined;
    for (const auto& [name, value] : request.headers) {
      if (Lower(name) != lower_name) continue;
      if (joined) {
        *joined += "," + CanonicalValue(value);
      } else {
        joined = CanonicalValue(value);
      }
    }
    return joined;
  };

  auto authorization = header("authorization");
  if (!authorization) {
    return Fail(403, "MissingAuthenticationToken",
                "Request is missing Authentication Token");
  }
  std::string_view auth = *authorization;
  if (auth.substr(0, kAlgorithm.size()) != kAlgorithm ||
      auth.size() == kAlgorithm.size() || auth[kAlgorithm.size()] != ' ') {
    return Fail(400, "IncompleteSignature",
                "Authorization header must use the AWS4-HMAC-SHA256 algorithm");
  }
  auth.remove_prefix(kAlgorithm.size() + 1);
  std::map<std::string, std::string, std::less<>> parts;
  while (!auth.empty()) {
    size_t comma = auth.find(',');
    std::string_view item = Trim(auth.substr(0, comma));
    auth = comma == std::string_view::npos ? "" : auth.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) continue;
    parts[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
  }
  for (const char* required : {"Credential", "SignedHeaders", "Signature"}) {
    if (!parts.count(required) || parts[required].empty()) {
      return Fail(400, "IncompleteSignature",
                  std::string("Authorization header requires '") + required +
                      "' parameter. Authorization=" + *authorization);
    }
  }

  // Credential = KEY/DATE/REGION/SERVICE/aws4_request
  std::vector<std::string> scope;
  {
    std::string_view cred = parts["Credential"];
    while (true) {
      size_t slash = cred.find('/');
      scope.emplace_back(cred.substr(0, slash));
      if (slash == std::string_view::npos) break;
      cred.remove_prefix(slash + 1);
    }
  }
  if (scope.size() != 5 || scope[4] != "aws4_request" || scope[0].empty()) {
    return Fail(400, "IncompleteSignature",
                "Credential should be scoped to a valid region, service and "
                "date: KEY/YYYYMMDD/REGION/SERVICE/aws4_request");
  }
  const std::string& key_id = scope[0];
  auto secret = secrets_.find(key_id);
  if (secret == secrets_.end()) {
    return Fail(403, "InvalidClientTokenId",
                "The security token included in the request is invalid.");
  }

  auto amz_date = header("x-amz-date");
  std::optional<Millis> signed_at;
  if (amz_date) signed_at = ParseAmzDate(*amz_date);
  if (!signed_at) {
    return Fail(400, "IncompleteSignature",
                "Request must contain a valid X-Amz-Date header "
                "(YYYYMMDD'T'HHMMSS'Z')");
  }
  if (*signed_at < now - kMaxSkewMillis || *signed_at > now + kMaxSkewMillis) {
    return Fail(403, "RequestExpired",
                "Signature expired: " + *amz_date +
                    " is more than 15 minutes away from the server's time");
  }
  if (scope[1] != amz_date->substr(0, 8)) {
    return Fail(403, "SignatureDoesNotMatch",
                "Credential date " + scope[1] + " does not match X-Amz-Date " +
                    *amz_date);
  }
  if (scope[2] != region_ || scope[3] != service_) {
    return Fail(403, "SignatureDoesNotMatch",
                "Credential should be scoped to region '" + region_ +
                    "' and service '" + service_ + "', not '" + scope[2] +
                    "' and '" + scope[3] + "'");
  }

  std::string canonical_headers;
  std::vector<std::string> signed_names;
  {
    std::string_view names = parts["SignedHeaders"];
    while (!names.empty()) {
      size_t semi = names.find(';');
      signed_names.push_back(Lower(names.substr(0, semi)));
      names = semi == std::string_view::npos ? "" : names.substr(semi + 1);
    }
  }
  if (std::find(signed_names.begin(), signed_names.end(), "host") ==
      signed_names.end()) {
    return Fail(400, "IncompleteSignature",
                "SignedHeaders must include the host header");
  }
  for (const auto& name : signed_names) {
    auto value = header(name);
    if (!value) {
      return Fail(403, "SignatureDoesNotMatch",
                  "Signed header '" + name + "' is not in the request");
    }
    canonical_headers += name + ":" + *value + "\n";
  }

  std::string payload_hash = Sha256Hex(request.body);
  if (auto declared = header("x-amz-content-sha256");
      declared && *declared != "UNSIGNED-PAYLOAD" && *declared != payload_hash) {
    return Fail(400, "SignatureDoesNotMatch",
                "The provided x-amz-content-sha256 header does not match the "
                "body");
  }

  std::string_view target = request.target;
  size_t question = target.find('?');
  std::string_view path = target.substr(0, question);
  std::string_view query =
      question == std::string_view::npos ? "" : target.substr(question + 1);
  std::string canonical_request = request.method + "\n" +
                                  UriEncode(path.empty() ? "/" : path, true) +
                                  "\n" + CanonicalQuery(query) + "\n" +
                                  canonical_headers + "\n" +
                                  parts["SignedHeaders"] + "\n" + payload_hash;
  std::string scope_text =
      scope[1] + "/" + scope[2] + "/" + scope[3] + "/aws4_request";
  std::string string_to_sign = std::string(kAlgorithm) + "\n" + *amz_date +
                               "\n" + scope_text + "\n" +
                               Sha256Hex(canonical_request);
  std::string key = HmacSha256("AWS4" + secret->second, scope[1]);
  key = HmacSha256(key, scope[2]);
  key = HmacSha256(key, scope[3]);
  key = HmacSha256(key, "aws4_request");
  std::string mac = HmacSha256(key, string_to_sign);
  std::string expected =
      Hex(reinterpret_cast<const unsigned char*>(mac.data()), mac.size());
  const std::string& given = parts["Signature"];
  if (given.size() != expected.size() ||
      CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0) {
    return Fail(403, "SignatureDoesNotMatch",
                "The request signature we calculated does not match the "
                "signature you provided. Check your AWS Secret Access Key and "
                "signing method.");
  }
  return AuthResult{key_id, std::nullopt};
}

}  // namespace cruncher::sqs
