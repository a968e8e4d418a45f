// executor_helper DATA_DIR
//
// Runs a LocalExecutor on DATA_DIR until killed. local_test kills it with
// SIGKILL to simulate an executor crash: nothing gets to record the running
// attempt as interrupted, and the attempt's process must die with it.
#include <unistd.h>

#include <iostream>

#include "local/executor.h"
#include "local/job_store.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: executor_helper DATA_DIR\n";
    return 2;
  }
  auto store = cruncher::local::LocalJobStore::Open(argv[1]);
  if (!store.ok()) {
    std::cerr << store.status().ToString() << "\n";
    return 1;
  }
  cruncher::local::LocalExecutor executor(
      **store, {.slots = 2, .backoff_scale = 0.001, .kill_grace = 200});
  if (auto s = executor.Start(); !s.ok()) {
    std::cerr << s.ToString() << "\n";
    return 1;
  }
  for (;;) ::pause();
}
