#include "sqs_endpoint/sigv4_verifier.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>
#include <ctime>
#include <string_view>

#include "aws/encoding.h"
#include "aws/sigv4.h"

namespace cruncher::sqs {
namespace {

constexpr Millis kMaxSkewMillis = 15 * 60 * 1000;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
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
      out.push_back(
          static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// The query with every name and value decoded and re-encoded strictly, so
// that a client's equivalent encodings (lower-case hex, unencoded '*')
// canonicalise alike; empty pairs are dropped. aws::ComputeSigV4Signature
// then sorts the pairs.
std::string ReencodeQuery(std::string_view query) {
  std::string out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? "" : query.substr(amp + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (!out.empty()) out.push_back('&');
    out += aws::PercentEncode(UriDecode(item.substr(0, eq))) + "=";
    if (eq != std::string_view::npos) {
      out += aws::PercentEncode(UriDecode(item.substr(eq + 1)));
    }
  }
  return out;
}

// Parses "YYYYMMDDTHHMMSSZ" to epoch milliseconds.
std::optional<Millis> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return std::nullopt;
  for (size_t i = 0; i < 15; ++i) {
    if (i != 8 && !std::isdigit(static_cast<unsigned char>(s[i])))
      return std::nullopt;
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
  return AuthResult{"",
                    AuthFailure{status, std::move(code), std::move(message)}};
}

}  // namespace

std::optional<std::string> SigningRegion(std::string_view authorization) {
  constexpr std::string_view kCredential = "Credential=";
  size_t start = authorization.find(kCredential);
  if (start == std::string_view::npos) return std::nullopt;
  std::string_view scope = authorization.substr(start + kCredential.size());
  scope = scope.substr(0, scope.find(','));
  // KEY/DATE/REGION/SERVICE/aws4_request: the region follows the second '/'.
  size_t first = scope.find('/');
  size_t second = first == std::string_view::npos ? std::string_view::npos
                                                  : scope.find('/', first + 1);
  size_t third = second == std::string_view::npos ? std::string_view::npos
                                                  : scope.find('/', second + 1);
  if (third == std::string_view::npos) return std::nullopt;
  std::string_view region = scope.substr(second + 1, third - second - 1);
  if (region.empty() || region.size() > 32 ||
      !std::all_of(region.begin(), region.end(), [](char c) {
        return std::islower(static_cast<unsigned char>(c)) ||
               std::isdigit(static_cast<unsigned char>(c)) || c == '-';
      })) {
    return std::nullopt;
  }
  return std::string(region);
}

AuthResult SigV4Verifier::Verify(const SignedRequest& request,
                                 Millis now) const {
  auto header = [&](std::string_view lower_name) {
    return aws::CanonicalHeaderValue(request.headers, lower_name);
  };

  auto authorization = header("authorization");
  if (!authorization) {
    return Fail(403, "MissingAuthenticationToken",
                "Request is missing Authentication Token");
  }
  std::string_view auth = *authorization;
  constexpr std::string_view kAlgorithm = aws::kSigV4Algorithm;
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

  // The client's own list of signed headers, in its order, is what it signed.
  aws::SigV4Input input;
  {
    std::string_view names = parts["SignedHeaders"];
    while (!names.empty()) {
      size_t semi = names.find(';');
      input.headers.emplace_back(Lower(names.substr(0, semi)), "");
      names = semi == std::string_view::npos ? "" : names.substr(semi + 1);
    }
  }
  if (std::none_of(input.headers.begin(), input.headers.end(),
                   [](const auto& h) { return h.first == "host"; })) {
    return Fail(400, "IncompleteSignature",
                "SignedHeaders must include the host header");
  }
  for (auto& [name, value] : input.headers) {
    std::optional<std::string> received = header(name);
    if (!received) {
      return Fail(403, "SignatureDoesNotMatch",
                  "Signed header '" + name + "' is not in the request");
    }
    value = std::move(*received);
  }

  const std::string payload_hash = Sha256Hex(request.body);
  if (auto declared = header("x-amz-content-sha256");
      declared && *declared != "UNSIGNED-PAYLOAD" &&
      *declared != payload_hash) {
    return Fail(400, "SignatureDoesNotMatch",
                "The provided x-amz-content-sha256 header does not match the "
                "body");
  }

  std::string_view target = request.target;
  size_t question = target.find('?');
  const std::string query = question == std::string_view::npos
                                ? ""
                                : ReencodeQuery(target.substr(question + 1));
  input.method = request.method;
  input.path = target.substr(0, question);
  input.query = query;
  input.payload_hash = payload_hash;
  input.amz_date = *amz_date;
  input.region = region_;
  input.service = service_;

  const std::string expected =
      aws::ComputeSigV4Signature(input, secret->second).signature;
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
