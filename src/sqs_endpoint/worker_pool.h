// WorkerPool: threads for work that blocks (SQLite commits, long polls).
//
// Submit runs a task on an idle thread, or starts a new thread while fewer
// than `max_threads` exist; beyond that, tasks wait in FIFO order. Threads
// are kept once started, so the pool grows to the peak concurrency it has
// seen. The endpoint sizes `max_threads` to its connection limit and runs at
// most one request per connection, so a request never waits for a thread
// behind long polls.
//
// Thread-safety: Submit and Shutdown may be called from any thread.
// Shutdown (and the destructor) stops accepting work, lets queued and running
// tasks finish, and joins.
#ifndef CRUNCHER_SQS_ENDPOINT_WORKER_POOL_H_
#define CRUNCHER_SQS_ENDPOINT_WORKER_POOL_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace cruncher::sqs {

class WorkerPool {
 public:
  explicit WorkerPool(int max_threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task`. Returns false (and drops it) once shutdown has begun.
  bool Submit(std::function<void()> task);

  // Refuses new tasks, waits for the queued and running ones. Idempotent;
  // the first caller joins the threads, later callers return at once.
  void Shutdown();

 private:
  void Run();

  const int max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::thread> threads_;
  int idle_ = 0;  // threads waiting for a task
  bool stopping_ = false;
};

}  // namespace cruncher::sqs

#endif  // CRUNCHER_SQS_ENDPOINT_WORKER_POOL_H_
