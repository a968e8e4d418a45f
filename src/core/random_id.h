// Random identifiers: message ids (UUID v4) and receipt-handle tokens.
//
// Thread-safety: safe from any thread (OpenSSL's CSPRNG).
#ifndef CRUNCHER_CORE_RANDOM_ID_H_
#define CRUNCHER_CORE_RANDOM_ID_H_

#include <string>

namespace cruncher {

// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lower-case hex.
std::string RandomUuid();
// 2 * bytes lower-case hex digits.
std::string RandomHex(int bytes);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_RANDOM_ID_H_
