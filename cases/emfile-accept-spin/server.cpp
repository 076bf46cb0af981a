#include "server.hpp"

#include <chrono>
#include <future>
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

bool Server::settle() {
  auto done = std::make_shared<std::promise<void>>();
  auto ran = done->get_future();
  // Two rounds: a completion the running handler queues (an accept it tried
  // before the call) runs before the second.
  asio::post(io_, [this, done] { asio::post(io_, [done] { done->set_value(); }); });
  return ran.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
}

void Server::start_session(tcp::socket socket) {
  ++accepted_;
  std::make_shared<session>(std::move(socket))->start();
}

}  // namespace emfile_accept_spin
