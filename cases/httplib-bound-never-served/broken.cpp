// The server's shutdown, broken: stop() is all it does, as cpp-httplib's own
// tests (BindServerTest.BindAndListenSeparately) and its README do.
#include "server.hpp"

namespace httplib_bound_never_served {

// FLAW: cpp-httplib 0.11.4's stop() closes the listening socket only
// `if (is_running_)`, which listen_after_bind() sets, and ~Server() is empty: a
// server that bound and never served keeps its socket in LISTEN until exit.
void HttpServer::shut() { stop(); }

}  // namespace httplib_bound_never_served
