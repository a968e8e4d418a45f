// The encodings a kubeconfig and an ExecCredential use: base64 for the
// `*-data` fields (standard alphabet with padding, line breaks ignored, as
// Go's encoding/base64.StdEncoding decodes a []byte field; the base64 itself
// is core/encoding.h's) and RFC 3339 times
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

// A kubeconfig `*-data` field: core's Base64Decode after dropping line
// breaks, which Go's decoder ignores (a folded YAML scalar may hold them).
Result<std::string> DecodeBase64Field(std::string_view text);

// "2026-11-30T12:00:00Z", "2026-11-30T12:00:00.5+01:00" -> milliseconds since
// the epoch (fractions below a millisecond are dropped). InvalidArgument for
// anything else.
Result<Millis> ParseRfc3339Time(std::string_view text);

}  // namespace cruncher::kube

#endif  // CRUNCHER_KUBE_ENCODING_H_
