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
// `flush(key, requests)` must return one Result per request, in order.
//
// Thread-safety: Run may be called from any thread; it blocks until its
// request has been flushed (by this thread or another).
#ifndef CRUNCHER_SQS_ENDPOINT_GROUP_COMMIT_H_
#define CRUNCHER_SQS_ENDPOINT_GROUP_COMMIT_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
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

  Response Run(const std::string& key, const Request& request) {
    Pending me{key, &request, std::nullopt, false};
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(&me);
    while (!me.done) {
      if (busy_) {
        cv_.wait(lock);
        continue;
      }
      busy_ = true;
      // Take the oldest request's key and every queued request with it.
      const std::string group_key = queue_.front()->key;
      std::vector<Pending*> group;
      for (auto it = queue_.begin(); it != queue_.end();) {
        if ((*it)->key == group_key) {
          group.push_back(*it);
          it = queue_.erase(it);
        } else {
          ++it;
        }
      }
      lock.unlock();
      std::vector<const Request*> requests;
      for (Pending* p : group) requests.push_back(p->request);
      std::vector<Response> responses = flush_(group_key, requests);
      lock.lock();
      for (size_t i = 0; i < group.size(); ++i) {
        group[i]->response = std::move(responses[i]);
        group[i]->done = true;
      }
      busy_ = false;
      cv_.notify_all();
    }
    return std::move(*me.response);
  }

 private:
  struct Pending {
    std::string key;
    const Request* request;
    std::optional<Response> response;
    bool done;
  };

  const Flush flush_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending*> queue_;
  bool busy_ = false;
};

}  // namespace cruncher::sqs

#endif  // CRUNCHER_SQS_ENDPOINT_GROUP_COMMIT_H_
