// The server's sockets, broken: they stay open across exec, so every program
// the server starts holds them too.
#include "server.hpp"

namespace inherited_socket {

// FLAW: Asio 1.74 opens the listening socket with socket() and not
// SOCK_CLOEXEC (chriskohlhoff/asio #523), and nothing here sets close-on-exec
// either: a child started later keeps the port bound after the server stops.
void adopt(tcp::acceptor&) {}

// FLAW: accepted connections come from accept(), not accept4(SOCK_CLOEXEC): a
// child started while one is open keeps it, and the peer sees no FIN on close.
void adopt(tcp::socket&) {}

}  // namespace inherited_socket
