#include "sqs_endpoint/worker_pool.h"

namespace cruncher::sqs {

WorkerPool::WorkerPool(int max_threads)
    : max_threads_(max_threads < 1 ? 1 : max_threads) {}

WorkerPool::~WorkerPool() { Shutdown(); }

void WorkerPool::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  // No thread is added once stopping_ is set, so threads_ is stable here.
  for (auto& t : threads_) t.join();
}

bool WorkerPool::Submit(std::function<void()> task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  tasks_.push_back(std::move(task));
  if (idle_ >= static_cast<int>(tasks_.size()) ||
      static_cast<int>(threads_.size()) >= max_threads_) {
    cv_.notify_one();
  } else {
    threads_.emplace_back([this] { Run(); });
  }
  return true;
}

void WorkerPool::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    ++idle_;
    cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
    --idle_;
    if (tasks_.empty()) return;  // stopping and drained
    auto task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace cruncher::sqs
