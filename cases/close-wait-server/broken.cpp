// The session, broken: the peer's FIN is not the end of the session.
#include "server.hpp"

namespace close_wait_server {

namespace {

class session : public session_base, public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, connection_manager& manager)
      : socket_(std::move(socket)), manager_(manager) {}

  void start() override { do_read(); }

  void stop() override {
    error_code ignored;
    socket_.close(ignored);
  }

 private:
  void do_read() {
    asio::async_read_until(socket_, asio::dynamic_buffer(request_), '\n',
                           [this, self = shared_from_this()](error_code ec, std::size_t n) {
      // FLAW: on EOF the handler just returns: no stop, and no new read either.
      // Nothing is left pending that could end the session: it stays in the
      // manager, and its socket in CLOSE_WAIT, until the whole server stops.
      if (ec == asio::error::eof) return;
      if (ec) return manager_.stop(self);
      reply_ = "ok: " + request_.substr(0, n);
      request_.erase(0, n);
      do_write();
    });
  }

  void do_write() {
    asio::async_write(socket_, asio::buffer(reply_),
                      [this, self = shared_from_this()](error_code ec, std::size_t) {
      if (ec) return manager_.stop(self);
      do_read();
    });
  }

  tcp::socket socket_;
  connection_manager& manager_;
  std::string request_, reply_;
};

}  // namespace

std::shared_ptr<session_base> make_session(tcp::socket socket, connection_manager& manager) {
  return std::make_shared<session>(std::move(socket), manager);
}

}  // namespace close_wait_server
