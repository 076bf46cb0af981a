// The session's TLS shutdown, fixed: a deadline closes the socket under it.
#include "server.hpp"

namespace asio_ssl_shutdown_hang {

void session::shut_down() {
  // FIX: a deadline on the shutdown (Icinga 2 #7864): when it passes, close
  // the lowest layer. That ends the pending read and the shutdown with an
  // error, and the session and its socket go.
  deadline_.expires_after(server_.options().shutdown_timeout);
  deadline_.async_wait([this, self = shared_from_this()](error_code ec) {
    if (ec != asio::error::operation_aborted) close();
  });
  stream_.async_shutdown([this, self = shared_from_this()](error_code ec) {
    deadline_.cancel();
    shutdown_done(ec);
  });
}

}  // namespace asio_ssl_shutdown_hang
