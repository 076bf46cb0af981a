#include "server.hpp"

#include "fixtures/backoff.hpp"

namespace close_wait_server {

void connection_manager::start(std::shared_ptr<session_base> s) {
  {
    std::lock_guard lock(mutex_);
    sessions_.insert(s);
  }
  s->start();
}

void connection_manager::stop(const std::shared_ptr<session_base>& s) {
  {
    std::lock_guard lock(mutex_);
    sessions_.erase(s);
  }
  s->stop();
}

void connection_manager::stop_all() {
  std::set<std::shared_ptr<session_base>> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(sessions_);
  }
  for (const auto& s : all) s->stop();
}

std::size_t connection_manager::size() const {
  std::lock_guard lock(mutex_);
  return sessions_.size();
}

std::size_t connection_manager::orphaned() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& s : sessions_) n += s.use_count() == 1;
  return n;
}

Server::Server(Options options)
    : options_(std::move(options)),
      acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
      retry_(io_),
      endpoint_(acceptor_.local_endpoint()) {
  do_accept();
  thread_ = std::thread([this] { io_.run(); });
}

Server::~Server() {
  asio::post(io_, [this] {
    acceptor_.close();
    retry_.cancel();
    manager_.stop_all();
  });
  thread_.join();
}

void Server::do_accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
    if (ec) {
      if (options_.on_accept_error) options_.on_accept_error(ec);
      // Don't spin on EMFILE: try again 50 ms later.
      return fixtures::retry_after(retry_, std::chrono::milliseconds(50), [this] { do_accept(); });
    }
    manager_.start(make_session(std::move(socket), manager_));
    do_accept();
  });
}

}  // namespace close_wait_server
