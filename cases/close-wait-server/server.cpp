#include "server.hpp"

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

Server::Server(Options options) {
  serve([this](tcp::socket socket) { manager_.start(make_session(std::move(socket), manager_)); },
        std::move(options.on_accept_error));
  thread_ = std::thread([this] { io_.run(); });
}

Server::~Server() {
  stop_serving([this] { manager_.stop_all(); });
}

}  // namespace close_wait_server
