// sqs_client_bench: drains a queue with our SQS client, receive(10) then
// DeleteMessageBatch, and prints the rate as JSON. run.sh starts moto and
// compare.py preloads the queue and runs this next to the same boto3 loop.
//
// Usage: sqs_client_bench QUEUE_URL EXPECTED_MESSAGES
// Endpoint, region and credentials come from the usual AWS_* settings.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "aws/sqs_client.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s QUEUE_URL EXPECTED_MESSAGES\n", argv[0]);
    return 2;
  }
  const long expected = std::strtol(argv[2], nullptr, 10);
  cruncher::aws::SqsOptions options;
  options.queue = argv[1];
  auto queue = cruncher::aws::OpenSqsQueue(options);
  if (!queue.ok()) {
    std::fprintf(stderr, "open: %s\n", queue.status().ToString().c_str());
    return 1;
  }
  long received = 0, deleted = 0, calls = 0, empty_in_a_row = 0;
  auto start = std::chrono::steady_clock::now();
  const std::clock_t cpu_start = std::clock();
  while (received < expected && empty_in_a_row < 3) {
    auto messages = (*queue)->Receive(10, 0, std::nullopt, {});
    ++calls;
    if (!messages.ok()) {
      std::fprintf(stderr, "receive: %s\n",
                   messages.status().ToString().c_str());
      return 1;
    }
    if (messages->empty()) {
      ++empty_in_a_row;
      continue;
    }
    empty_in_a_row = 0;
    received += static_cast<long>(messages->size());
    std::vector<std::string> handles;
    for (const auto& m : *messages) handles.push_back(m.receipt_handle);
    for (const auto& r : (*queue)->DeleteBatch(handles)) {
      if (r.status.ok()) {
        ++deleted;
      } else {
        std::fprintf(stderr, "delete: %s\n", r.status.ToString().c_str());
      }
    }
    ++calls;
  }
  double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  double cpu = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  std::printf(
      "{\"client\": \"cruncher C++\", \"received\": %ld, \"deleted\": %ld, "
      "\"calls\": %ld, \"seconds\": %.3f, \"cpu_seconds\": %.3f, "
      "\"messages_per_second\": %.1f}\n",
      received, deleted, calls, secs, cpu, deleted / secs);
  return deleted == expected ? 0 : 1;
}
