// queue_send_helper DATA_DIR QUEUE BODY [DELAY_MS]
//
// Opens the local queue store in DATA_DIR as a separate process would (its
// own SQLite connection and doorbell), waits DELAY_MS, sends BODY to QUEUE
// and exits 0; exits 1 with the error on stderr. local_test runs it to show
// that a long poll in another process wakes up at once.
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "local/queue_store.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: queue_send_helper DATA_DIR QUEUE BODY [DELAY_MS]\n";
    return 2;
  }
  auto store = cruncher::local::LocalQueueStore::Open(argv[1]);
  if (!store.ok()) {
    std::cerr << store.status().ToString() << "\n";
    return 1;
  }
  if (argc > 4) {
    std::this_thread::sleep_for(std::chrono::milliseconds(std::atoi(argv[4])));
  }
  auto id = (*store)->Send(argv[2], {argv[3], {}, 0});
  if (!id.ok()) {
    std::cerr << id.status().ToString() << "\n";
    return 1;
  }
  return 0;
}
