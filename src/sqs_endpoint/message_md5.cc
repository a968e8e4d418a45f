#include "sqs_endpoint/message_md5.h"

#include <openssl/evp.h>

#include <cstdint>

namespace cruncher::sqs {
namespace {

void AppendLengthPrefixed(std::string& out, std::string_view bytes) {
  const auto n = static_cast<uint32_t>(bytes.size());
  out.push_back(static_cast<char>((n >> 24) & 0xff));
  out.push_back(static_cast<char>((n >> 16) & 0xff));
  out.push_back(static_cast<char>((n >> 8) & 0xff));
  out.push_back(static_cast<char>(n & 0xff));
  out.append(bytes);
}

}  // namespace

std::string Md5Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_md5(), nullptr);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::string MessageAttributesMd5(const MessageAttributes& attributes) {
  if (attributes.empty()) return "";
  // std::map orders names by std::string's operator<, i.e. by bytes.
  std::string encoded;
  for (const auto& [name, attr] : attributes) {
    AppendLengthPrefixed(encoded, name);
    AppendLengthPrefixed(encoded, attr.data_type);
    const bool binary = attr.data_type.compare(0, 6, "Binary") == 0;
    encoded.push_back(binary ? 2 : 1);
    AppendLengthPrefixed(encoded, attr.value);
  }
  return Md5Hex(encoded);
}

}  // namespace cruncher::sqs
