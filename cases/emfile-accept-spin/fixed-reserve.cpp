// The accept loop, fixed with a reserve descriptor: on EMFILE the waiting
// connections are accepted with it and closed at once.
#include <fcntl.h>

#include "server.hpp"

namespace emfile_accept_spin {

void Server::do_accept() {
  // FIX: keep one descriptor in reserve (libuv's EMFILE trick, joyent/libuv #315).
  if (!spare_) spare_.reset(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  acceptor_.async_accept([this](error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      ++failed_accepts_;
      // FIX: on EMFILE, free the reserve, accept every waiting connection and close
      // it at once (each client gets a close instead of waiting; the reserve is
      // reopened above), then wait for the next connection before accepting again.
      if (ec == asio::error::no_descriptors && spare_) {
        spare_.reset();
        acceptor_.non_blocking(true, ec);
        for (tcp::socket pending(io_); acceptor_.accept(pending, ec), !ec; pending.close(ec)) {
        }
        return acceptor_.async_wait(tcp::acceptor::wait_read, [this](error_code wait_ec) {
          if (!wait_ec) do_accept();
        });
      }
      return do_accept();
    }
    start_session(std::move(socket));
    do_accept();
  });
}

}  // namespace emfile_accept_spin
