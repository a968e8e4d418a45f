#include "core/random_id.h"

#include <openssl/rand.h>

#include <cstdlib>
#include <vector>

namespace cruncher {
namespace {

std::vector<unsigned char> RandomBytes(int n) {
  std::vector<unsigned char> bytes(static_cast<size_t>(n));
  if (RAND_bytes(bytes.data(), n) != 1) {
    // OpenSSL's generator never fails once seeded from the kernel; if it
    // does, identifiers could collide, which must not go unnoticed.
    std::abort();
  }
  return bytes;
}

std::string ToHex(const std::vector<unsigned char>& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 0xf]);
  }
  return out;
}

}  // namespace

std::string RandomUuid() {
  auto bytes = RandomBytes(16);
  bytes[6] = static_cast<unsigned char>((bytes[6] & 0x0f) | 0x40);
  bytes[8] = static_cast<unsigned char>((bytes[8] & 0x3f) | 0x80);
  std::string hex = ToHex(bytes);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) +
         "-" + hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string RandomHex(int bytes) { return ToHex(RandomBytes(bytes)); }

}  // namespace cruncher
