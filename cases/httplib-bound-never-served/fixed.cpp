// The server's shutdown, fixed: stop(), then release the listening socket
// whether or not the accept loop ever ran.
#include "server.hpp"

#include <sys/socket.h>
#include <unistd.h>

namespace httplib_bound_never_served {

// FIX: what stop() does since cpp-httplib PR #2517 (v0.52.0): close svr_sock_
// whenever it is open, not only while serving. The exchange makes it safe
// against an accept loop that already let go of it.
void HttpServer::shut() {
  stop();
  if (int sock = svr_sock_.exchange(INVALID_SOCKET); sock != INVALID_SOCKET) {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
}

}  // namespace httplib_bound_never_served
