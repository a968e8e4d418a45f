// Byte encodings and digests used across components: hex, base64, SHA-256.
// One home for each, so the queue store, Job names, SQS wire formats and
// SigV4 agree on them.
//
// Thread-safety: pure functions; safe from any thread.
#ifndef CRUNCHER_CORE_ENCODING_H_
#define CRUNCHER_CORE_ENCODING_H_

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace cruncher {

// Lower-case hex, two digits per byte.
std::string HexEncode(std::string_view bytes);
// Accepts upper- and lower-case digits; nullopt on an odd length or a
// character that is not a hex digit.
std::optional<std::string> HexDecode(std::string_view hex);

// Standard base64 with padding (RFC 4648 §4).
std::string Base64Encode(std::string_view bytes);
// Fails with InvalidArgument on malformed input.
Result<std::string> Base64Decode(std::string_view text);

std::string Sha256(std::string_view data);  // raw 32 bytes
std::string Sha256Hex(std::string_view data);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_ENCODING_H_
