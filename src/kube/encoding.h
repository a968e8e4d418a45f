// The encodings a kubeconfig and an ExecCredential use: base64 for the
// `*-data` fields (standard alphabet with padding, line breaks ignored, as
// Go's encoding/base64.StdEncoding decodes a []byte field) and RFC 3339 times
// (metav1.Time), with fractional seconds and a zone offset.
//
// Thread-safety: pure functions.
#ifndef CRUNCHER_KUBE_ENCODING_H_
#define CRUNCHER_KUBE_ENCODING_H_

#include <string>
#include <string_view>

#include "core/clock.h"
#include "core/status.h"

namespace cruncher::kube {

// Fails with InvalidArgument naming the offending byte offset.
Result<std::string> Base64Decode(std::string_view text);
std::string Base64Encode(std::string_view bytes);

// "2026-11-30T12:00:00Z", "2026-11-30T12:00:00.5+01:00" -> milliseconds since
// the epoch (fractions below a millisecond are dropped). InvalidArgument for
// anything else.
Result<Millis> ParseRfc3339Time(std::string_view text);

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_ENCODING_H_
