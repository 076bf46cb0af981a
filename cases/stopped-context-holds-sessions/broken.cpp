// Server::stop(), broken: it stops the io_context and nothing else.
#include "server.hpp"

namespace stopped_context {

void Server::stop() {
  if (!running()) return;
  // FLAW: stop() only makes run() return. Each session's read stays pending in
  // the io_context with its handler, which holds the session (and its socket);
  // the Server keeps the io_context alive for restart(), so a client that closes
  // now leaves its server socket in CLOSE_WAIT until restart() or ~Server.
  io_.stop();
  thread_.join();
}

}  // namespace stopped_context
