#include "core/job_name.h"

#include <cctype>

#include "core/encoding.h"

namespace cruncher {
namespace {

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)); }

}  // namespace

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

std::string JobNameFor(std::string_view prefix, std::string_view queue,
                       std::string_view message_id) {
  std::string key(queue);
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
  if (out.size() > 63) out.resize(63);
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
  return ToLabelValue(queue);
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
  return name + Sha256Hex(queue).substr(0, 10);
}

}  // namespace cruncher
