// The accept loop, broken: a failed accept is retried at once.
#include "server.hpp"

namespace emfile_accept_spin {

void Server::do_accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      ++failed_accepts_;
      // FLAW: re-armed at once. Asio tries the new accept straight away, and
      // accept(2) needs a free descriptor before it looks at the queue: EMFILE
      // again, and again; a core burns until a descriptor frees up.
      return do_accept();
    }
    start_session(std::move(socket));
    do_accept();
  });
}

}  // namespace emfile_accept_spin
