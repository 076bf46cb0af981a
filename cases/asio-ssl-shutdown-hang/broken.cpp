// The session's TLS shutdown, broken: it waits for the peer without a limit.
#include "server.hpp"

namespace asio_ssl_shutdown_hang {

void session::shut_down() {
  // FLAW: async_shutdown sends close_notify and then waits for the peer's, with
  // no deadline. A peer that never sends one keeps this handler, the session
  // and its socket alive: forever if it stays silent, and in CLOSE_WAIT (or
  // CLOSE) if it goes away without close_notify, since the read that is pending
  // alongside takes its FIN (or RST) and the shutdown's own read never wakes.
  stream_.async_shutdown([this, self = shared_from_this()](error_code ec) {
    shutdown_done(ec);
  });
}

}  // namespace asio_ssl_shutdown_hang
