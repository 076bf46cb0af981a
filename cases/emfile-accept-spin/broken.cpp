// The accept loop, broken: a failed accept is retried at once.
#include "server.hpp"

namespace emfile_accept_spin {

void Server::do_accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      ++failed_accepts_;
      // FLAW: re-armed at once. On EMFILE the connection that made the listening
      // socket readable is still queued, so the next accept fails the same way:
      // the loop burns a core until a descriptor frees up, and the client waits.
      return do_accept();
    }
    start_session(std::move(socket));
    do_accept();
  });
}

}  // namespace emfile_accept_spin
