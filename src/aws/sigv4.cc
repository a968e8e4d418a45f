#include "aws/sigv4.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>
#include <vector>

#include "aws/encoding.h"

namespace cruncher::aws {
namespace {

const std::set<std::string, std::less<>>& UnsignedHeaders() {
  static const std::set<std::string, std::less<>> names = {
      "connection",
      "expect",
      "keep-alive",
      "proxy-authenticate",
      "proxy-authorization",
      "te",
      "trailer",
      "transfer-encoding",
      "upgrade",
      "user-agent",
      "x-amzn-trace-id"};
  return names;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) {
    return static_cast<char>(std::tolower(c));
  });
  return out;
}

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

// Trims and collapses runs of whitespace to one space.
std::string TrimAll(std::string_view v) {
  std::string out;
  bool pending_space = false;
  for (char c : v) {
    if (IsSpace(c)) {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

// RFC 3986 dot-segment removal; empty segments are dropped as well.
std::string NormalizePath(std::string_view path) {
  if (path.empty()) return "/";
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view seg = path.substr(start, slash - start);
    if (seg == "..") {
      if (!out.empty()) out.pop_back();
    } else if (!seg.empty() && seg != ".") {
      out.push_back(seg);
    }
    start = slash + 1;
  }
  std::string result = path.front() == '/' ? "/" : "";
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i) result += '/';
    result += out[i];
  }
  if (path.back() == '/' && !out.empty()) result += '/';
  return result;
}

std::string CanonicalQuery(std::string_view query) {
  if (query.empty()) return "";
  std::vector<std::pair<std::string, std::string>> pairs;
  std::size_t start = 0;
  while (start <= query.size()) {
    std::size_t amp = query.find('&', start);
    if (amp == std::string_view::npos) amp = query.size();
    std::string_view pair = query.substr(start, amp - start);
    std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos) {
      pairs.emplace_back(std::string(pair), "");
    } else {
      pairs.emplace_back(std::string(pair.substr(0, eq)),
                         std::string(pair.substr(eq + 1)));
    }
    start = amp + 1;
  }
  std::sort(pairs.begin(), pairs.end());
  std::string out;
  for (const auto& [k, v] : pairs) {
    if (!out.empty()) out += '&';
    out += k + "=" + v;
  }
  return out;
}

void RemoveHeader(net::HttpRequest& request, std::string_view lower_name) {
  auto& h = request.headers;
  h.erase(std::remove_if(
              h.begin(), h.end(),
              [&](const auto& kv) { return Lower(kv.first) == lower_name; }),
          h.end());
}

}  // namespace

std::optional<std::string> CanonicalHeaderValue(
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::string_view lower_name) {
  std::optional<std::string> joined;
  for (const auto& [name, value] : headers) {
    if (Lower(name) != lower_name) continue;
    if (joined) {
      *joined += ',' + TrimAll(value);
    } else {
      joined = TrimAll(value);
    }
  }
  return joined;
}

SigV4Parts ComputeSigV4Signature(const SigV4Input& input,
                                 std::string_view secret_access_key) {
  SigV4Parts parts;
  std::string canonical_headers;
  for (const auto& [name, value] : input.headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!parts.signed_headers.empty()) parts.signed_headers += ';';
    parts.signed_headers += name;
  }
  std::string method(input.method);
  std::transform(
      method.begin(), method.end(), method.begin(),
      [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  parts.canonical_request =
      method + "\n" + PercentEncode(NormalizePath(input.path), "/") + "\n" +
      CanonicalQuery(input.query) + "\n" + canonical_headers + "\n" +
      parts.signed_headers + "\n" + std::string(input.payload_hash);

  const std::string day(input.amz_date.substr(0, 8));
  parts.scope = day + "/" + std::string(input.region) + "/" +
                std::string(input.service) + "/aws4_request";
  parts.string_to_sign = std::string(kSigV4Algorithm) + "\n" +
                         std::string(input.amz_date) + "\n" + parts.scope +
                         "\n" + Sha256Hex(parts.canonical_request);

  std::string key = HmacSha256("AWS4" + std::string(secret_access_key), day);
  key = HmacSha256(key, input.region);
  key = HmacSha256(key, input.service);
  key = HmacSha256(key, "aws4_request");
  parts.signature = HexEncode(HmacSha256(key, parts.string_to_sign));
  return parts;
}

Result<SigV4Parts> SignV4(net::HttpRequest& request,
                          const AwsCredentials& creds, std::string_view service,
                          std::string_view region, Millis now) {
  if (creds.access_key_id.empty() || creds.secret_access_key.empty()) {
    return InvalidArgument("cannot sign request to " + request.url +
                           ": credentials are empty");
  }
  CRUNCHER_ASSIGN_OR_RETURN(Url url, ParseUrl(request.url));
  const std::string amz_date = FormatAmzDate(now);

  RemoveHeader(request, "authorization");
  RemoveHeader(request, "x-amz-date");
  RemoveHeader(request, "x-amz-security-token");
  request.headers.emplace_back("X-Amz-Date", amz_date);
  if (!creds.session_token.empty()) {
    request.headers.emplace_back("X-Amz-Security-Token", creds.session_token);
  }

  SigV4Input input{request.method, url.path, url.query, {}, {},
                   amz_date,       region,   service};
  std::set<std::string> names;  // sorted, as SignedHeaders must be
  for (const auto& header : request.headers) {
    std::string lname = Lower(header.first);
    if (!UnsignedHeaders().count(lname)) names.insert(std::move(lname));
  }
  names.insert("host");
  for (const std::string& name : names) {
    std::optional<std::string> value =
        CanonicalHeaderValue(request.headers, name);
    input.headers.emplace_back(name, value ? *value : url.HostHeader());
  }

  // A caller-supplied payload hash (X-Amz-Content-SHA256) is signed as is.
  std::optional<std::string> payload_hash;
  for (const auto& [name, value] : request.headers) {
    if (Lower(name) == "x-amz-content-sha256") payload_hash = value;
  }
  if (!payload_hash) payload_hash = Sha256Hex(request.body);
  input.payload_hash = *payload_hash;

  SigV4Parts parts = ComputeSigV4Signature(input, creds.secret_access_key);
  parts.authorization =
      std::string(kSigV4Algorithm) + " Credential=" + creds.access_key_id +
      "/" + parts.scope + ", SignedHeaders=" + parts.signed_headers +
      ", Signature=" + parts.signature;
  request.headers.emplace_back("Authorization", parts.authorization);
  return parts;
}

}  // namespace cruncher::aws
