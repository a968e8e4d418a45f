// The digests SQS returns with SendMessage and ReceiveMessage.
//
// MD5OfMessageBody is the MD5 of the body's UTF-8 bytes. MD5OfMessageAttributes
// is the MD5 of the attributes encoded as SQS documents: for each attribute in
// ascending byte order of its name, the name, the data type (each as a 4-byte
// big-endian length followed by the bytes), one transport byte (1 for String
// and Number types, 2 for Binary) and the value (length-prefixed likewise;
// binary values as their raw bytes). Clients such as the AWS SDKs recompute
// both and reject responses that differ, so these must match SQS exactly.
//
// Thread-safety: pure functions.
#ifndef CRUNCHER_SQS_ENDPOINT_MESSAGE_MD5_H_
#define CRUNCHER_SQS_ENDPOINT_MESSAGE_MD5_H_

#include <string>
#include <string_view>

#include "core/message_queue.h"

namespace cruncher::sqs {

// Lower-case hex MD5 of `data`.
std::string Md5Hex(std::string_view data);

// MD5OfMessageAttributes for `attributes`; empty when there are none (SQS
// then omits the field).
std::string MessageAttributesMd5(const MessageAttributes& attributes);

}  // namespace cruncher::sqs

#endif  // CRUNCHER_SQS_ENDPOINT_MESSAGE_MD5_H_
