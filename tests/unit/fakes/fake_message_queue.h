// FakeMessageQueue: an in-memory MessageQueue with SQS semantics, driven by a
// Clock (use a FakeClock), that records every call for assertions.
//
// Semantics kept from SQS: a received message is invisible until its
// visibility expires or it is deleted; every delivery has a new receipt
// handle and only the newest one deletes or changes visibility; the receive
// count grows per delivery. Receive never waits (wait_seconds is recorded).
// Errors can be injected per method.
//
// Thread-safety: all methods lock one mutex.
#ifndef CRUNCHER_TESTS_UNIT_FAKES_FAKE_MESSAGE_QUEUE_H_
#define CRUNCHER_TESTS_UNIT_FAKES_FAKE_MESSAGE_QUEUE_H_

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/message_queue.h"
#include "core/status.h"

namespace cruncher::testing {

class FakeMessageQueue final : public MessageQueue {
 public:
  struct Stored {
    Message message;  // id, body, attributes, receive_count, sent_at
    Millis visible_at = 0;
    std::string handle;  // the newest receipt handle, "" if never received
  };
  struct ReceiveCall {
    int max_messages = 0;
    int wait_seconds = 0;
    std::optional<int> visibility_seconds;
  };
  struct VisibilityCall {
    std::string handle;
    int seconds = 0;
  };

  FakeMessageQueue(std::string name, Clock& clock,
                   int default_visibility_seconds = 30)
      : name_(std::move(name)),
        clock_(clock),
        default_visibility_(default_visibility_seconds) {}

  std::string name() const override { return name_; }

  Result<std::vector<Message>> Receive(
      int max_messages, int wait_seconds, std::optional<int> visibility_seconds,
      const std::stop_token& /*stop*/) override {
    std::lock_guard<std::mutex> lock(mu_);
    receive_calls_.push_back({max_messages, wait_seconds, visibility_seconds});
    if (!receive_error_.ok()) return receive_error_;
    if (max_messages < 1 || max_messages > 10) {
      return InvalidArgument("MaxNumberOfMessages must be 1 to 10");
    }
    Millis now = clock_.NowMillis();
    std::vector<Message> out;
    for (auto& s : messages_) {
      if (static_cast<int>(out.size()) >= max_messages) break;
      if (s.visible_at > now) continue;
      s.message.receive_count++;
      if (s.message.first_received_at == 0) s.message.first_received_at = now;
      s.handle = s.message.id + "#" + std::to_string(++handle_seq_);
      s.visible_at =
          now + visibility_seconds.value_or(default_visibility_) * 1000LL;
      Message m = s.message;
      m.receipt_handle = s.handle;
      out.push_back(std::move(m));
    }
    return out;
  }

  Result<std::string> Send(const OutgoingMessage& message) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!send_error_.ok()) return send_error_;
    if (message.attributes.size() > kMaxMessageAttributes) {
      return InvalidArgument("Number of message attributes [" +
                             std::to_string(message.attributes.size()) +
                             "] exceeds the allowed maximum [10].");
    }
    Stored s;
    s.message.id = "msg-" + std::to_string(++id_seq_);
    s.message.body = message.body;
    s.message.attributes = message.attributes;
    s.message.sent_at = clock_.NowMillis();
    s.visible_at =
        s.message.sent_at + message.delay_seconds.value_or(0) * 1000LL;
    messages_.push_back(s);
    return s.message.id;
  }

  std::vector<BatchEntryResult> DeleteBatch(
      const std::vector<std::string>& handles) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<BatchEntryResult> results;
    for (const auto& h : handles) {
      deleted_handles_.push_back(h);
      auto it = FindByHandle(h);
      if (it == messages_.end()) {
        results.push_back({h, InvalidArgument("unknown or stale handle " + h)});
        continue;
      }
      messages_.erase(it);
      results.push_back({h, Status::Ok()});
    }
    return results;
  }

  std::vector<BatchEntryResult> ChangeVisibilityBatch(
      const std::vector<std::string>& handles, int seconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<BatchEntryResult> results;
    Millis now = clock_.NowMillis();
    for (const auto& h : handles) {
      visibility_calls_.push_back({h, seconds});
      auto it = FindByHandle(h);
      if (it == messages_.end() || it->visible_at <= now) {
        results.push_back({h, FailedPrecondition("not in flight: " + h)});
        continue;
      }
      it->visible_at = now + seconds * 1000LL;
      results.push_back({h, Status::Ok()});
    }
    return results;
  }

  Result<QueueDepth> Depth() override {
    std::lock_guard<std::mutex> lock(mu_);
    QueueDepth d;
    Millis now = clock_.NowMillis();
    for (const auto& s : messages_) {
      if (s.visible_at <= now)
        d.visible++;
      else if (s.message.receive_count > 0)
        d.in_flight++;
      else
        d.delayed++;
    }
    return d;
  }

  // --- For tests ----------------------------------------------------------

  // Sends a body; returns the new message id.
  std::string Add(const std::string& body) {
    auto id = Send(OutgoingMessage{body, {}, 0});
    return id.value();
  }
  std::vector<Stored> messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  std::optional<Stored> Find(const std::string& id) const {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& s : messages_) {
      if (s.message.id == id) return s;
    }
    return std::nullopt;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_.size();
  }
  std::vector<ReceiveCall> receive_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return receive_calls_;
  }
  std::vector<std::string> deleted_handles() const {
    std::lock_guard<std::mutex> lock(mu_);
    return deleted_handles_;
  }
  std::vector<VisibilityCall> visibility_calls() const {
    std::lock_guard<std::mutex> lock(mu_);
    return visibility_calls_;
  }
  void set_receive_error(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    receive_error_ = std::move(s);
  }
  void set_send_error(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    send_error_ = std::move(s);
  }

 private:
  std::vector<Stored>::iterator FindByHandle(const std::string& handle) {
    return std::find_if(messages_.begin(), messages_.end(),
                        [&](const Stored& s) {
                          return !s.handle.empty() && s.handle == handle;
                        });
  }

  const std::string name_;
  Clock& clock_;
  const int default_visibility_;
  mutable std::mutex mu_;
  std::vector<Stored> messages_;
  long long id_seq_ = 0;
  long long handle_seq_ = 0;
  std::vector<ReceiveCall> receive_calls_;
  std::vector<std::string> deleted_handles_;
  std::vector<VisibilityCall> visibility_calls_;
  Status receive_error_;
  Status send_error_;
};

}  // namespace cruncher::testing

#endif  // CRUNCHER_TESTS_UNIT_FAKES_FAKE_MESSAGE_QUEUE_H_
