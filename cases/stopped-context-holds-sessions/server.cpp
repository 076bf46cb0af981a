#include "server.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace stopped_context {

class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket socket) : socket_(std::move(socket)) {}

  void start() { do_read(); }

  void close() {
    error_code ignored;
    socket_.close(ignored);
  }

 private:
  // Every step's handler holds `self`: the session lives while an operation
  // of it is pending or its handler is queued.
  void do_read() {
    asio::async_read_until(socket_, asio::dynamic_buffer(request_, max_line), '\n',
                           [self = shared_from_this()](error_code ec, std::size_t n) {
                             self->on_line(ec, n);
                           });
  }

  void on_line(error_code ec, std::size_t n) {
    if (ec) return close();  // EOF, reset, an overlong line, operation_aborted
    reply_ = "ok: " + request_.substr(0, n);
    request_.erase(0, n);
    asio::async_write(socket_, asio::buffer(reply_),
                      [self = shared_from_this()](error_code write_ec, std::size_t) {
                        if (write_ec) self->close();
                        else self->do_read();
                      });
  }

  tcp::socket socket_;
  std::string request_, reply_;
};

void connection_manager::add(const std::shared_ptr<session>& s) {
  std::lock_guard lock(mutex_);
  std::erase_if(sessions_, [](const auto& w) { return w.expired(); });
  sessions_.push_back(s);
}

void connection_manager::stop_all() {
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard lock(mutex_);
    for (const auto& w : sessions_)
      if (auto s = w.lock()) live.push_back(std::move(s));
  }
  for (const auto& s : live) s->close();
}

std::size_t connection_manager::size() const {
  std::lock_guard lock(mutex_);
  return static_cast<std::size_t>(
      std::count_if(sessions_.begin(), sessions_.end(), [](const auto& w) { return !w.expired(); }));
}

Server::Server(Options options) {
  serve([this](tcp::socket socket) {
    auto s = std::make_shared<session>(std::move(socket));
    manager_.add(s);
    s->start();
  }, std::move(options.on_accept_error));
  thread_ = std::thread([this] { io_.run(); });
}

Server::~Server() { stop(); }

void Server::restart() {
  if (running()) throw std::logic_error("Server::restart(): the server is running; stop() it first");
  io_.restart();
  thread_ = std::thread([this] { io_.run(); });
}

}  // namespace stopped_context
