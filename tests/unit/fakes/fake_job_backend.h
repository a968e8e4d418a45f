// FakeJobBackend: an in-memory JobBackend whose Jobs the test finishes by
// hand, with injectable errors and call counts.
//
// Like the real backends, Create of an existing name is AlreadyExists
// whoever owns the Job; List and CountUnfinished see only Cruncher's Jobs.
//
// Thread-safety: all methods lock one mutex.
#ifndef CRUNCHER_TESTS_UNIT_FAKES_FAKE_JOB_BACKEND_H_
#define CRUNCHER_TESTS_UNIT_FAKES_FAKE_JOB_BACKEND_H_

#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/job.h"
#include "core/job_backend.h"
#include "core/status.h"

namespace cruncher::testing {

class FakeJobBackend final : public JobBackend {
 public:
  Status Create(const nlohmann::json& manifest) override {
    std::lock_guard<std::mutex> lock(mu_);
    create_calls_++;
    if (!create_errors_.empty()) {
      Status s = create_errors_.front();
      create_errors_.pop_front();
      return s;
    }
    auto job = Job::FromJson(manifest);
    if (!job.ok()) return job.status();
    std::string name = job->name();
    if (jobs_.count(name))
      return AlreadyExists("job " + name + " already exists");
    jobs_.emplace(name, *job);
    order_.push_back(name);
    return Status::Ok();
  }

  Result<Job> Get(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!get_error_.ok()) return get_error_;
    auto it = jobs_.find(name);
    if (it == jobs_.end()) return NotFound("job " + name + " not found");
    return it->second;
  }

  Result<std::vector<Job>> List() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<Job> out;
    for (const auto& name : order_) {
      auto it = jobs_.find(name);
      if (it != jobs_.end() && it->second.managed_by_cruncher()) {
        out.push_back(it->second);
      }
    }
    return out;
  }

  Status Delete(const std::string& name) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (jobs_.erase(name) == 0) return NotFound("job " + name + " not found");
    return Status::Ok();
  }

  Result<int> CountUnfinished() override {
    std::lock_guard<std::mutex> lock(mu_);
    count_calls_++;
    if (!count_error_.ok()) return count_error_;
    if (unfinished_override_) return *unfinished_override_;
    int n = 0;
    for (const auto& [name, job] : jobs_) {
      if (job.managed_by_cruncher() && !job.finished()) ++n;
    }
    return n;
  }

  Status StreamLogs(const std::string& name, const LogOptions&, LogSink&,
                    std::stop_token) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!jobs_.count(name)) return NotFound("job " + name + " not found");
    return Status::Ok();
  }

  // --- For tests ----------------------------------------------------------

  // Stores a Job as is (e.g. one not made by Cruncher).
  void Put(const nlohmann::json& object) {
    std::lock_guard<std::mutex> lock(mu_);
    auto job = Job::FromJson(object);
    jobs_[job->name()] = *job;
    order_.push_back(job->name());
  }
  void SetRunning(const std::string& name) {
    Mutate(name, [](nlohmann::json& st) {
      st["active"] = 1;
      st["ready"] = 1;
    });
  }
  void SetComplete(const std::string& name) {
    Mutate(name, [](nlohmann::json& st) {
      st["succeeded"] = 1;
      st["conditions"] = {{{"type", "Complete"}, {"status", "True"}}};
    });
  }
  void SetFailed(const std::string& name) {
    Mutate(name, [](nlohmann::json& st) {
      st["failed"] = 1;
      st["conditions"] = {{{"type", "Failed"},
                           {"status", "True"},
                           {"reason", "BackoffLimitExceeded"}}};
    });
  }
  std::optional<Job> Find(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(name);
    if (it == jobs_.end()) return std::nullopt;
    return it->second;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return jobs_.size();
  }
  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& [name, job] : jobs_) out.push_back(name);
    return out;
  }
  // The next Create calls fail with these, in order.
  void QueueCreateError(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    create_errors_.push_back(std::move(s));
  }
  void set_get_error(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    get_error_ = std::move(s);
  }
  void set_count_error(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    count_error_ = std::move(s);
  }
  // CountUnfinished reports this instead of counting.
  void set_unfinished_override(std::optional<int> n) {
    std::lock_guard<std::mutex> lock(mu_);
    unfinished_override_ = n;
  }
  int create_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return create_calls_;
  }
  int count_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_calls_;
  }

 private:
  template <typename F>
  void Mutate(const std::string& name, F f) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(name);
    if (it == jobs_.end()) return;
    nlohmann::json& st = it->second.mutable_json()["status"];
    if (!st.is_object()) st = nlohmann::json::object();
    f(st);
  }

  mutable std::mutex mu_;
  std::map<std::string, Job> jobs_;
  std::vector<std::string> order_;
  std::deque<Status> create_errors_;
  Status get_error_;
  Status count_error_;
  std::optional<int> unfinished_override_;
  int create_calls_ = 0;
  int count_calls_ = 0;
};

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_FAKES_FAKE_JOB_BACKEND_H_
