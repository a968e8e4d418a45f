#include "aws/encoding.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

namespace cruncher::aws {
namespace {

bool IsUnreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

std::string FormatUtc(Millis t, const char* format) {
  std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::size_t n = std::strftime(buf, sizeof(buf), format, &tm);
  return std::string(buf, n);
}

}  // namespace

std::string Url::Origin() const {
  std::string out = scheme + "://";
  out += host.find(':') != std::string::npos ? "[" + host + "]" : host;
  if (port) out += ":" + std::to_string(*port);
  return out;
}

std::string Url::HostHeader() const {
  std::string out =
      host.find(':') != std::string::npos ? "[" + host + "]" : host;
  bool default_port =
      (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  if (port && !default_port) out += ":" + std::to_string(*port);
  return out;
}

Result<Url> ParseUrl(std::string_view url) {
  auto bad = [&](std::string_view why) {
    return InvalidArgument("invalid URL \"" + std::string(url) +
                           "\": " + std::string(why));
  };
  Url out;
  std::size_t colon = url.find("://");
  if (colon == std::string_view::npos) return bad("no scheme");
  for (char c : url.substr(0, colon)) {
    out.scheme +=
        static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (out.scheme != "http" && out.scheme != "https") {
    return bad("scheme must be http or https");
  }
  std::string_view rest = url.substr(colon + 3);
  std::size_t fragment = rest.find('#');
  if (fragment != std::string_view::npos) rest = rest.substr(0, fragment);
  std::size_t authority_end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view tail =
      authority_end == std::string_view::npos ? "" : rest.substr(authority_end);
  std::size_t at = authority.rfind('@');
  if (at != std::string_view::npos) authority = authority.substr(at + 1);
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed IPv6 literal");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("junk after IPv6 literal");
      port = after.substr(1);
    }
  } else {
    std::size_t p = authority.rfind(':');
    if (p != std::string_view::npos) {
      host = authority.substr(0, p);
      port = authority.substr(p + 1);
    }
  }
  if (host.empty()) return bad("no host");
  for (char c : host) {
    out.host += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (!port.empty()) {
    int value = 0;
    auto [ptr, ec] =
        std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value <= 0 ||
        value > 65535) {
      return bad("bad port");
    }
    out.port = value;
  }
  std::size_t q = tail.find('?');
  out.path = std::string(tail.substr(0, q));
  if (q != std::string_view::npos) out.query = std::string(tail.substr(q + 1));
  return out;
}

std::string PercentEncode(std::string_view in, std::string_view also_safe) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(in.size());
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || also_safe.find(ch) != std::string_view::npos) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    }
  }
  return out;
}

std::string FormEncode(
    std::initializer_list<std::pair<std::string_view, std::string_view>> kv) {
  std::string out;
  for (const auto& [k, v] : kv) {
    if (!out.empty()) out += '&';
    out += PercentEncode(k);
    out += '=';
    out += PercentEncode(v);
  }
  return out;
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest,
       &len);
  return std::string(reinterpret_cast<char*>(digest), len);
}

std::string FormatAmzDate(Millis t) { return FormatUtc(t, "%Y%m%dT%H%M%SZ"); }
std::string FormatAmzDay(Millis t) { return FormatUtc(t, "%Y%m%d"); }

Result<Millis> ParseIso8601(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr) {
    return InvalidArgument("bad timestamp \"" + s + "\"");
  }
  Millis millis = 0;
  if (*end == '.') {
    ++end;
    int digits = 0;
    while (std::isdigit(static_cast<unsigned char>(*end))) {
      if (digits < 3) millis = millis * 10 + (*end - '0');
      ++digits;
      ++end;
    }
    for (; digits < 3; ++digits) millis *= 10;
  }
  long offset_secs = 0;
  if (*end == 'Z' || *end == 'z') {
    ++end;
  } else if (*end == '+' || *end == '-') {
    int sign = *end == '-' ? -1 : 1;
    int hh = 0, mm = 0;
    if (std::sscanf(end + 1, "%2d:%2d", &hh, &mm) != 2) {
      return InvalidArgument("bad timestamp offset \"" + s + "\"");
    }
    offset_secs = sign * (hh * 3600L + mm * 60L);
    end += 6;
  }
  if (*end != '\0') return InvalidArgument("bad timestamp \"" + s + "\"");
  return (static_cast<Millis>(timegm(&tm)) - offset_secs) * 1000 + millis;
}

std::optional<Millis> ParseHttpDate(std::string_view text) {
  std::string s(text);
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr) return std::nullopt;
  return static_cast<Millis>(timegm(&tm)) * 1000;
}

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    std::string why = "cannot read " + path + ": " + std::strerror(err);
    if (err == ENOENT) return NotFound(why);
    return Unavailable(why);
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace cruncher::aws
