// The TLS connection, fixed: close() closes; shutdown() is the TLS shutdown.
// Regression test for python/cpython#131888 (test_ftplib's SSLConnection).
#include "tls_connection.hpp"

namespace ftp_tls {

// FIX: close() is the hard close again: it always releases the descriptor,
// whatever the TLS state, so Reactor::close_all() really closes.
void TlsConnection::close() {
  Dispatcher::close();
}

// FIX: the TLS shutdown has a name of its own, called only where the connection
// itself decides to end (QUIT, transfer done, the peer gone) and the reactor
// keeps driving it to the end.
void TlsConnection::shutdown() {
  if (is_secure()) return do_tls_shutdown();
  close();
}

}  // namespace ftp_tls
