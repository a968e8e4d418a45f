// GroupCommit: combines concurrent store calls into one transaction.
//
// Every SQLite commit waits for the disk (synchronous=FULL), and the store
// serializes commits, so concurrent SendMessageBatch / DeleteMessageBatch
// requests would each pay a full commit in turn. Run() queues a request; a
// caller that finds no commit in progress becomes the leader, takes every
// queued request for the same key (queue name) and runs them with one call
// of `flush`, while the others wait; then it hands each its own results.
// Requests arriving during a commit form the next group, so a lone client
// sees no added latency.
//
// `flush(key, requests)` must return one Result per request, in order. If it
// throws, every caller of that group gets the exception.
//
// Thread-safety: Run may be called from any thread; it blocks until its
// request has been flushed (by this thread or another).
#ifndef CRUNCHER_SQS_ENDPOINT_GROUP_COMMIT_H_
#define CRUNCHER_SQS_ENDPOINT_GROUP_COMMIT_H_

#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace cruncher::sqs {

template <typename Request, typename Response>
class GroupCommit {
 public:
  using Flush = std::function<std::vector<Response>(
      const std::string& key, const std::vector<const Request*>& requests)>;

  explicit GroupCommit(Flush flush) : flush_(std::move(flush)) {}

  // Throws what `flush` threw (to every caller whose request was in the
  // failed group; the next group is flushed normally), or std::logic_error
  // if `flush` returned the wrong number of responses.
  Response Run(const std::string& key, const Request& request) {
    Pending me{key, &request, std::nullopt, nullptr, false};
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(&me);
    while (!me.done) {
      if (busy_) {
        cv_.wait(lock);
        continue;
      }
      // Take the oldest request's key and every queued request with it.
      const std::string group_key = queue_.front()->key;
      std::vector<Pending*> group;
      group.reserve(queue_.size());
      for (Pending* p : queue_) {
        if (p->key == group_key) group.push_back(p);
      }
      std::erase_if(queue_,
                    [&](const Pending* p) { return p->key == group_key; });
      busy_ = true;
      lock.unlock();
      // Whatever happens in flush, the group is answered and busy_ cleared:
      // otherwise its other callers, and every later one, wait forever.
      std::vector<Response> responses;
      std::exception_ptr error;
      try {
        std::vector<const Request*> requests;
        requests.reserve(group.size());
        for (Pending* p : group) requests.push_back(p->request);
        responses = flush_(group_key, requests);
        if (responses.size() != group.size()) {
          throw std::logic_error("GroupCommit: flush returned " +
                                 std::to_string(responses.size()) +
                                 " responses for " +
                                 std::to_string(group.size()) + " requests");
        }
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      for (size_t i = 0; i < group.size(); ++i) {
        if (error) {
          group[i]->error = error;
        } else {
          group[i]->response = std::move(responses[i]);
        }
        group[i]->done = true;
      }
      busy_ = false;
      cv_.notify_all();
    }
    if (me.error) std::rethrow_exception(me.error);
    return std::move(*me.response);
  }

  // How many requests wait for a leader to take them (for tests).
  size_t queued() const {
    std::lock_guard<std::mutex> lock(mu_);
    return queue_.size();
  }

 private:
  struct Pending {
    std::string key;
    const Request* request;
    std::optional<Response> response;
    std::exception_ptr error;  // set instead of response if flush failed
    bool done;
  };

  const Flush flush_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> queue_;
  bool busy_ = false;
};

}  // namespace cruncher::sqs

#endif  // CRUNCHER_SQS_ENDPOINT_GROUP_COMMIT_H_
