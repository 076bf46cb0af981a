#include "server.hpp"

namespace beast_ws_ssl_teardown {

class Server::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Server& server) : ws_(std::move(socket), server.tls_), server_(server) {}

  void start() {
    if (server_.behaviour_ == Behaviour::not_tls) {
      asio::async_write(tcp_socket(), asio::buffer(not_tls_),
                        [self = shared_from_this()](error_code, std::size_t) { self->stop(); });
      return;
    }
    ws_.next_layer().async_handshake(ssl::stream_base::server, [self = shared_from_this()](error_code ec) {
      if (ec) return;
      self->ws_.async_accept([self](error_code ec) {
        if (ec) return;
        if (self->server_.behaviour_ == Behaviour::never_answers_close)
          return self->server_.kept_.push_back(self);  // holds the stream, never reads
        if (self->server_.behaviour_ == Behaviour::garbage) return self->send_garbage();
        self->do_read();
      });
    });
  }

  void stop() {
    error_code ignored;
    tcp_socket().close(ignored);  // pending operations complete with operation_aborted
  }

 private:
  tcp::socket& tcp_socket() { return beast::get_lowest_layer(ws_); }

  void do_read() {
    ws_.async_read(buffer_, [self = shared_from_this()](error_code ec, std::size_t) {
      if (ec == websocket::error::closed) return self->closed();  // Beast has answered and torn down
      if (ec) return;
      self->reply_ = beast::buffers_to_string(self->buffer_.data());
      self->buffer_.consume(self->buffer_.size());
      if (self->reply_ == "bye") {
        return self->ws_.async_close(websocket::close_code::normal, [self](error_code ec) {
          if (!ec) self->closed();
        });
      }
      self->ws_.text(self->ws_.got_text());
      self->ws_.async_write(asio::buffer(self->reply_), [self](error_code ec, std::size_t) {
        if (!ec) self->do_read();
      });
    });
  }

  void send_garbage() {
    tcp_socket().async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
      if (ec) return;
      asio::async_write(self->tcp_socket(), asio::buffer(garbage_, sizeof garbage_ - 1),
                        [self](error_code, std::size_t) { self->server_.kept_.push_back(self); });
    });
  }

  void closed() {
    if (server_.behaviour_ == Behaviour::keep_closed) server_.kept_.push_back(shared_from_this());
    ++server_.closed_;  // last: a test that sees the count sees the session's end done
    // echo: the last handler returns, the session and its stream are destroyed
  }

  static constexpr char not_tls_[] = "this is not TLS\r\n";
  static constexpr char garbage_[] = "this is not a TLS record\r\n";
  wss_stream ws_;
  Server& server_;
  beast::flat_buffer buffer_;
  std::string reply_;
};

Server::Server(Behaviour behaviour) : behaviour_(behaviour), tls_(ssl::context::tls_server) {
  tls_.use_certificate_chain_file(CLOSECHECK_TEST_CERT);
  tls_.use_private_key_file(CLOSECHECK_TEST_KEY, ssl::context::pem);
  serve([this](tcp::socket socket) {
    auto session = std::make_shared<Session>(std::move(socket), *this);
    std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
    sessions_.push_back(session);
    session->start();
  });
  thread_ = std::thread([this] { io_.run(); });
}

Server::~Server() {
  stop_serving([this] {
    for (auto& weak : sessions_)
      if (auto session = weak.lock()) session->stop();
    kept_.clear();
  });
}

}  // namespace beast_ws_ssl_teardown
