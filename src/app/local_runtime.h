// LocalRuntime: the local "cluster" and controller running in this process,
// as `cruncher local serve`, `cruncher watch --local` and the demo use them:
// the process executor plus a dispatcher thread reading the queue.
//
// The runtime holds DATA_DIR/executor.lock (flock) while it runs, so a
// second executor on the same data directory is refused with a clear error
// instead of running every task twice.
//
// Thread-safety: Start/Stop from one thread.
#ifndef CRUNCHER_APP_LOCAL_RUNTIME_H_
#define CRUNCHER_APP_LOCAL_RUNTIME_H_

#include <memory>
#include <string>
#include <thread>

#include "core/template.h"
#include "dispatch/dispatcher.h"
#include "local/executor.h"

namespace cruncher::app {

struct RuntimeOptions {
  local::ExecutorOptions executor;
  dispatch::DispatcherOptions dispatcher;
};

class LocalRuntime {
 public:
  // `dead_letter` may be null; `data_dir` is where the Jobs are (and the
  // lock).
  LocalRuntime(MessageQueue& queue, MessageQueue* dead_letter,
               local::LocalJobStore& jobs, std::string data_dir,
               const JobTemplate& job_template, RuntimeOptions options);
  ~LocalRuntime();

  // FailedPrecondition if another executor holds the data directory.
  Status Start();
  // Requests the dispatcher's stop (ending its long poll at once) and joins
  // it, then stops the executor.
  void Stop();
  const dispatch::Dispatcher& dispatcher() const { return dispatcher_; }

 private:
  const std::string data_dir_;
  dispatch::Dispatcher dispatcher_;
  local::LocalExecutor executor_;
  int lock_fd_ = -1;
  std::jthread dispatch_thread_;
};

}  // namespace cruncher::app

#endif  // CRUNCHER_APP_LOCAL_RUNTIME_H_
