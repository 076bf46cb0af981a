// The WebSocket payload queue, broken: like aiohttp 3.11.0's new
// WebSocketDataQueue (PR #9685), it does not answer is_eof().
#include <deque>

#include "client.hpp"

namespace websocket_eof_check {

namespace {

class WebSocketDataQueue : public PayloadQueue {
 public:
  const char* name() const override { return "WebSocketDataQueue"; }
  void feed_data(Message message) override { messages_.push_back(std::move(message)); }
  void feed_eof() override { eof_ = true; }
  std::optional<Message> pop() override {
    if (messages_.empty()) return std::nullopt;
    auto m = std::move(messages_.front());
    messages_.pop_front();
    return m;
  }
  // FLAW: no is_eof(). The interface's default throws, so the connector's
  // release path fails after it has already forgotten the connection, and the
  // socket is never closed.

 private:
  std::deque<Message> messages_;
  bool eof_ = false;
};

}  // namespace

std::unique_ptr<PayloadQueue> make_websocket_queue() { return std::make_unique<WebSocketDataQueue>(); }

}  // namespace websocket_eof_check
