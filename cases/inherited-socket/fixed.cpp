// The server's sockets, fixed: they are closed on exec, so a program the
// server starts holds only the descriptors it was given.
#include "server.hpp"

namespace inherited_socket {

// FIX: Asio has no option for it (chriskohlhoff/asio #523), so set
// close-on-exec on the native handle as soon as Asio hands the socket over.
void adopt(tcp::acceptor& acceptor) { set_close_on_exec(acceptor.native_handle()); }

// FIX: the same for each accepted connection, before anything can exec.
void adopt(tcp::socket& socket) { set_close_on_exec(socket.native_handle()); }

}  // namespace inherited_socket
