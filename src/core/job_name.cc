#include "core/job_name.h"

#include <cctype>

#include "core/encoding.h"

namespace cruncher {
namespace {

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)); }

bool IsLowerAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// `text` for an error message: control and non-ASCII bytes as \xNN, cut
// after 80 characters, so that a hostile name cannot forge log lines.
std::string Printable(std::string_view text) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (char c : text.substr(0, 80)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 15]);
    } else {
      out.push_back(c);
    }
  }
  if (text.size() > 80) out += "...";
  return out;
}

}  // namespace

bool IsValidObjectName(std::string_view name) {
  if (name.empty() || name.size() > kMaxObjectNameLength) return false;
  size_t label_start = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i < name.size() && name[i] != '.') {
      if (!IsLowerAlnum(name[i]) && name[i] != '-') return false;
      continue;
    }
    // A label ends at i: non-empty, alphanumeric at both ends.
    if (i == label_start || !IsLowerAlnum(name[label_start]) ||
        !IsLowerAlnum(name[i - 1])) {
      return false;
    }
    label_start = i + 1;
  }
  return true;
}

Status CheckJobName(std::string_view name) {
  if (IsValidObjectName(name)) return Status::Ok();
  return InvalidArgument(
      "invalid Job name \"" + Printable(name) +
      "\": a Job name is 1 to 253 lower-case letters, digits, '-' and '.', "
      "starting and ending with a letter or digit");
}

std::string SanitizeJobNamePrefix(std::string_view prefix) {
  std::string out;
  for (char c : prefix) {
    char lower = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (IsAlnum(lower) || lower == '-') {
      out.push_back(lower);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  size_t first = out.find_first_not_of('-');
  out = first == std::string::npos ? "" : out.substr(first);
  if (out.size() > kMaxJobNameLength - kJobNameHashLength) {
    out.resize(kMaxJobNameLength - kJobNameHashLength);
  }
  return out.empty() ? "job-" : out;
}

namespace {

// "us-east-1", "ap-southeast-2", "us-gov-west-1", "cn-north-1".
bool LooksLikeRegion(std::string_view label) {
  const size_t last_dash = label.rfind('-');
  if (last_dash == std::string_view::npos || last_dash + 1 >= label.size() ||
      label.size() < 9) {
    return false;
  }
  for (char c : label.substr(last_dash + 1)) {
    if (c < '0' || c > '9') return false;
  }
  const std::string_view words = label.substr(0, last_dash);
  if (words.size() < 4 || words[2] != '-') return false;
  for (char c : words) {
    if (c != '-' && (c < 'a' || c > 'z')) return false;
  }
  return true;
}

std::string RegionOfHost(std::string_view host) {
  std::string lower;
  for (char c : host) {
    lower.push_back(
        static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (lower == "queue.amazonaws.com") return "us-east-1";
  if (lower.find(".amazonaws.com") == std::string::npos) return "";
  std::string_view rest = lower;
  while (!rest.empty()) {
    const size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (LooksLikeRegion(label)) return std::string(label);
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return "";
}

}  // namespace

std::string QueueIdentity(std::string_view queue) {
  const size_t scheme = queue.find("://");
  if (scheme == std::string_view::npos) return std::string(queue);
  std::string_view rest = queue.substr(scheme + 3);
  const size_t path_at = rest.find('/');
  std::string_view authority = rest.substr(0, path_at);
  std::string_view path =
      path_at == std::string_view::npos ? "" : rest.substr(path_at);
  if (const size_t at = authority.rfind('@'); at != std::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string_view host = authority;
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else if (const size_t colon = host.find(':');
             colon != std::string_view::npos) {
    host = host.substr(0, colon);
  }
  if (const size_t query = path.find_first_of("?#");
      query != std::string_view::npos) {
    path = path.substr(0, query);
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  const size_t name_at = path.rfind('/');
  if (name_at == std::string_view::npos) return std::string(queue);
  const std::string_view name = path.substr(name_at + 1);
  std::string_view account = path.substr(0, name_at);
  if (const size_t slash = account.rfind('/');
      slash != std::string_view::npos) {
    account.remove_prefix(slash + 1);
  }
  return RegionOfHost(host) + ":" + std::string(account) + ":" +
         std::string(name);
}

std::string JobNameFor(std::string_view prefix, std::string_view queue,
                       std::string_view message_id) {
  std::string key = QueueIdentity(queue);
  key.push_back('\n');
  key.append(message_id);
  return SanitizeJobNamePrefix(prefix) +
         Sha256Hex(key).substr(0, kJobNameHashLength);
}

std::string ToLabelValue(std::string_view text) {
  std::string out;
  for (char c : text) {
    out.push_back(IsAlnum(c) || c == '-' || c == '_' || c == '.' ? c : '-');
  }
  if (out.size() > kMaxLabelLength) out.resize(kMaxLabelLength);
  while (!out.empty() && !IsAlnum(out.back())) out.pop_back();
  size_t first = 0;
  while (first < out.size() && !IsAlnum(out[first])) ++first;
  return out.substr(first);
}

std::string QueueLabelFor(std::string_view queue) {
  if (queue.find("://") != std::string_view::npos) {
    std::string_view path = queue;
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    const std::size_t slash = path.rfind('/');
    if (slash != std::string_view::npos && slash + 1 < path.size()) {
      queue = path.substr(slash + 1);
    }
  }
  std::string label = ToLabelValue(queue);
  // A name that is a label value already is its own label: the labels of
  // existing Jobs stay as they were.
  if (label == queue) return label;
  // Sanitizing or truncating maps several names to one label ("-abc_" and
  // "abc"), and queues sharing a label share watch's cache, --max-active
  // and every command's selection: the hash of the name keeps them apart.
  const std::string hash = Sha256Hex(queue).substr(0, kQueueLabelHashLength);
  if (label.size() > kMaxLabelLength - 1 - hash.size()) {
    label.resize(kMaxLabelLength - 1 - hash.size());
  }
  while (!label.empty() && !IsAlnum(label.back())) label.pop_back();
  return label.empty() ? hash : label + "-" + hash;
}

std::string LeaseNameFor(std::string_view queue) {
  std::string readable;
  for (char c : QueueLabelFor(queue)) {
    if (readable.size() == 40) break;
    const char lower =
        static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const bool ok =
        (lower >= 'a' && lower <= 'z') || (lower >= '0' && lower <= '9');
    if (ok) {
      readable.push_back(lower);
    } else if (!readable.empty() && readable.back() != '-') {
      readable.push_back('-');
    }
  }
  while (!readable.empty() && readable.back() == '-') readable.pop_back();
  std::string name = "cruncher-";
  if (!readable.empty()) name += readable + "-";
  return name + Sha256Hex(QueueIdentity(queue)).substr(0, 10);
}

}  // namespace cruncher
