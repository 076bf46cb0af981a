// The TLS connection, broken: close() only starts the TLS shutdown.
// Regression test for python/cpython#131888 (test_ftplib's SSLConnection).
#include "tls_connection.hpp"

namespace ftp_tls {

// FLAW: close() starts the bidirectional TLS shutdown instead of closing. Its
// second step waits for the peer's close_notify; on a non-blocking socket that
// is "want read", and close() returns with the descriptor open, counting on the
// reactor to call again. Reactor::close_all() calls close(), then clears the
// map: nothing calls again, and the descriptor is never closed.
void TlsConnection::close() {
  if (is_secure()) return do_tls_shutdown();
  Dispatcher::close();
}

void TlsConnection::shutdown() { close(); }

}  // namespace ftp_tls
