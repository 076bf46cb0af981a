// The WebSocket payload queue, fixed: like aiohttp 3.11.2's WebSocketDataQueue
// (PR #9883), it answers is_eof().
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
  // FIX: answer the release path's question. A live WebSocket is not at EOF,
  // so its connection should close, and the connector closes it.
  bool is_eof() const override { return eof_; }

 private:
  std::deque<Message> messages_;
  bool eof_ = false;
};

}  // namespace

std::unique_ptr<PayloadQueue> make_websocket_queue() { return std::make_unique<WebSocketDataQueue>(); }

}  // namespace websocket_eof_check
