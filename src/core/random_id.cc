#include "core/random_id.h"

#include <openssl/rand.h>

#include <cstdlib>

#include "core/encoding.h"

namespace cruncher {
namespace {

std::string RandomBytes(int n) {
  std::string bytes(static_cast<size_t>(n), '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), n) != 1) {
    // OpenSSL's generator never fails once seeded from the kernel; if it
    // does, identifiers could collide, which must not go unnoticed.
    std::abort();
  }
  return bytes;
}

}  // namespace

std::string RandomUuid() {
  auto bytes = RandomBytes(16);
  bytes[6] = static_cast<char>((bytes[6] & 0x0f) | 0x40);
  bytes[8] = static_cast<char>((bytes[8] & 0x3f) | 0x80);
  std::string hex = HexEncode(bytes);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) +
         "-" + hex.substr(16, 4) + "-" + hex.substr(20);
}

std::string RandomHex(int bytes) { return HexEncode(RandomBytes(bytes)); }

}  // namespace cruncher
