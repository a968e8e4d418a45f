// Deterministic Job names.
//
// A Job's name is the template's prefix (metadata.generateName, e.g. "demo-")
// followed by a short hash of the queue name and the message id. The same
// message delivered twice therefore maps to the same name, and the second
// create meets AlreadyExists instead of making a duplicate Job. Names are
// valid DNS-1123 labels of at most 63 characters.
//
// Thread-safety: pure functions.
#ifndef CRUNCHER_CORE_JOB_NAME_H_
#define CRUNCHER_CORE_JOB_NAME_H_

#include <string>
#include <string_view>

#include "core/status.h"

namespace cruncher {

inline constexpr size_t kMaxJobNameLength = 63;
inline constexpr size_t kJobNameHashLength = 10;

// The longest Kubernetes object name (a DNS-1123 subdomain).
inline constexpr size_t kMaxObjectNameLength = 253;

// Whether `name` is a valid Kubernetes object name, a DNS-1123 subdomain:
// 1 to 253 characters, dot-separated labels of lower-case letters, digits
// and '-', each starting and ending with a letter or digit. Names of Jobs
// and Leases go into URL paths, so anything else ("../x", "", "a b") is
// refused before a request is built.
bool IsValidObjectName(std::string_view name);

// OK for a valid object name; else InvalidArgument
// `invalid Job name "NAME": ...` (the name escaped and cut for printing).
Status CheckJobName(std::string_view name);

// Makes `prefix` usable at the start of a DNS-1123 label: lower case,
// [a-z0-9-] only, starting with a letter or digit, at most 63 - 10 chars.
// An empty result becomes "job-".
std::string SanitizeJobNamePrefix(std::string_view prefix);

// What stays the same however an SQS queue URL is spelled (attack finding
// 5): "REGION:ACCOUNT:NAME" (the tail of the queue's ARN) for a URL, the
// region read from an AWS host name (sqs.R.amazonaws.com, R.queue...,
// vpce-...sqs.R.vpce..., queue.amazonaws.com = us-east-1) and empty for
// other hosts (localhost and 127.0.0.1 are the same emulator); `queue`
// itself for a local queue's name.
std::string QueueIdentity(std::string_view queue);

// prefix + 10 hex digits of SHA-256(QueueIdentity(queue) "\n" message_id),
// so that two spellings of one queue's URL make one Job per message.
std::string JobNameFor(std::string_view prefix, std::string_view queue,
                       std::string_view message_id);

// A Kubernetes label value (≤63 chars, [A-Za-z0-9._-], alphanumeric at both
// ends) that stands for `text`; used for the queue label.
std::string ToLabelValue(std::string_view text);

// The cruncher.dev/queue label of a queue's Jobs: the queue's name, also
// when `queue` is an SQS queue URL (its last path segment), so that
// `kubectl get jobs -l cruncher.dev/queue=tasks` works for SQS too. A name
// that is not a label value as it is (over 63 characters, or not starting
// and ending with a letter or digit) becomes ToLabelValue of it, cut to
// leave room, + "-" + 10 hex digits of the SHA-256 of the name: two queues
// ("-abc_" and "abc") never share a label by accident.
inline constexpr size_t kMaxLabelLength = 63;
inline constexpr size_t kQueueLabelHashLength = 10;
std::string QueueLabelFor(std::string_view queue);

// The default Lease of `watch --leader-elect` for `queue` (a name or an SQS
// URL): "cruncher-" + the queue's name made a DNS label (lower case, ≤40
// characters) + "-" + 10 hex digits of the SHA-256 of QueueIdentity(queue),
// so that any SQS name gives a valid object name, two queues of the same
// name (other regions or accounts) never share a Lease, and two spellings
// of one queue's URL always do.
std::string LeaseNameFor(std::string_view queue);

}  // namespace cruncher

#endif  // CRUNCHER_CORE_JOB_NAME_H_
