#include "kube/credentials.h"

#include "kube/file_reader.h"

namespace cruncher::kube {
namespace {

std::string TrimSpace(std::string s) {
  const char* ws = " \t\r\n";
  const auto first = s.find_first_not_of(ws);
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(ws);
  return s.substr(first, last - first + 1);
}

}  // namespace

Status CheckBearerToken(std::string_view token) {
  for (std::size_t i = 0; i < token.size(); ++i) {
    const auto byte = static_cast<unsigned char>(token[i]);
    if (byte < 0x20 || byte == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      return InvalidArgument(std::string("the token contains a control "
                                         "character (byte 0x") +
                             kHex[byte >> 4] + kHex[byte & 15] + " at offset " +
                             std::to_string(i) +
                             "); a token is one line of printable text");
    }
  }
  return Status::Ok();
}

TokenFileCredentialProvider::TokenFileCredentialProvider(
    std::string path, std::string fallback_token, const Clock& clock,
    std::string where, Millis reread_after_ms)
    : path_(std::move(path)),
      fallback_token_(std::move(fallback_token)),
      clock_(clock),
      where_(std::move(where)),
      reread_after_ms_(reread_after_ms) {}

Result<Credentials> TokenFileCredentialProvider::Get() {
  std::lock_guard<std::mutex> lock(mu_);
  const Millis now = clock_.NowMillis();
  if (!stale_ && now - read_at_ < reread_after_ms_) {
    return Credentials{token_, "", "", {}};
  }
  Status error;
  auto bytes = ReadFileBounded(path_, kMaxTokenBytes);
  if (bytes.ok()) {
    std::string token = TrimSpace(std::move(bytes).value());
    error = token.empty() ? InvalidArgument(path_ + ": the token file is empty")
                          : CheckBearerToken(token).WithContext(path_);
    if (error.ok()) {
      token_ = std::move(token);
      read_at_ = now;
      stale_ = false;
      return Credentials{token_, "", "", {}};
    }
  } else {
    error = bytes.status();
  }
  // Keep serving the last good token while the file is unreadable or holds
  // no usable token (it may be between an unlink and a rename); stale_
  // stays set to retry next time.
  if (!token_.empty()) return Credentials{token_, "", "", {}};
  if (!fallback_token_.empty()) return Credentials{fallback_token_, "", "", {}};
  return error.WithContext(where_);
}

void TokenFileCredentialProvider::Invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  stale_ = true;
}

}  // namespace cruncher::kube
