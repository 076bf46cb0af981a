#include "server.hpp"

#include <memory>
#include <string>

namespace emfile_accept_spin {

namespace {

class session : public std::enable_shared_from_this<session> {
 public:
  explicit session(tcp::socket socket) : socket_(std::move(socket)) {}

  void start() { do_read(); }

 private:
  void do_read() {
    asio::async_read_until(socket_, asio::dynamic_buffer(request_, max_line), '\n',
                           [this, self = shared_from_this()](error_code ec, std::size_t n) {
      if (ec) return;  // EOF, reset, or a line over max_line: the socket closes with us
      reply_ = "ok: " + request_.substr(0, n);
      request_.erase(0, n);
      asio::async_write(socket_, asio::buffer(reply_),
                        [this, self](error_code write_ec, std::size_t) {
        if (!write_ec) do_read();
      });
    });
  }

  tcp::socket socket_;
  std::string request_, reply_;
};

}  // namespace

Server::Server()
    : acceptor_(io_, tcp::endpoint(asio::ip::address_v4::loopback(), 0)),
      retry_(io_),
      endpoint_(acceptor_.local_endpoint()) {
  do_accept();
  thread_ = std::thread([this] { io_.run(); });
}

Server::~Server() {
  io_.stop();
  thread_.join();
  // The sessions' handlers, and with them their sockets, are destroyed with io_.
}

void Server::start_session(tcp::socket socket) {
  ++accepted_;
  std::make_shared<session>(std::move(socket))->start();
}

}  // namespace emfile_accept_spin
