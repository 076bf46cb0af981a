// Server::stop(), fixed: it closes every session's socket, then stops the io_context.
#include "server.hpp"

namespace stopped_context {

void Server::stop() {
  if (!running()) return;
  // FIX: on the io_context's own thread, close every session's socket first
  // (the connection manager's stop_all), then stop. Handlers may still be
  // queued, and hold their sessions, but no longer a socket.
  asio::post(io_, [this] {
    manager_.stop_all();
    io_.stop();
  });
  thread_.join();
}

}  // namespace stopped_context
