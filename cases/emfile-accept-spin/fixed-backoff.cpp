// The accept loop, fixed with a back-off timer: a failed accept is retried later.
#include "server.hpp"

namespace emfile_accept_spin {

void Server::do_accept() {
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      ++failed_accepts_;
      // FIX: wait before asking again (nginx; AntelopeIO/leap #603): ten tries a
      // second at most; the client waits in the backlog until a descriptor frees up.
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](error_code wait_ec) {
        if (!wait_ec) do_accept();
      });
      return;
    }
    start_session(std::move(socket));
    do_accept();
  });
}

}  // namespace emfile_accept_spin
