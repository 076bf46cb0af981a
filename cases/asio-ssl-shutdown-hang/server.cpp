#include "server.hpp"

#include <algorithm>

namespace asio_ssl_shutdown_hang {

namespace {
constexpr std::size_t max_line = 1024;  // a longer line ends the session
}

session::session(tcp::socket socket, Server& server)
    : server_(server), stream_(std::move(socket), server.tls()), deadline_(stream_.get_executor()) {}

void session::start() {
  stream_.async_handshake(ssl::stream_base::server, [this, self = shared_from_this()](error_code ec) {
    server_.record([&](Stats& s) { ++(ec ? s.handshake_failures : s.handshakes); });
    if (ec) return close();
    busy_ = false;
    do_read();
    if (stopping_) shut_down();  // deferred by disconnect()
  });
}

// The read that is always pending. When the peer ends the connection first
// (its close_notify, its FIN, garbage) the session closes; once a shutdown
// has started, the shutdown's handler does the close.
void session::do_read() {
  asio::async_read_until(stream_, asio::dynamic_buffer(request_, max_line), '\n',
                         [this, self = shared_from_this()](error_code ec, std::size_t n) {
    if (ec) {
      server_.record([&](Stats& s) { s.reads_ended.push_back(ec); });
      if (!stopping_) close();
      return;
    }
    reply_ = "ok: " + request_.substr(0, n);
    request_.erase(0, n);
    if (stopping_) return do_read();
    do_write();
  });
}

void session::do_write() {
  busy_ = true;
  asio::async_write(stream_, asio::buffer(reply_), [this, self = shared_from_this()](error_code ec, std::size_t) {
    busy_ = false;
    if (ec) return close();
    server_.record([](Stats& s) { ++s.replies; });
    do_read();
    if (stopping_) shut_down();  // deferred by disconnect()
    else if (reply_ == "ok: quit\n") disconnect();  // the client asked: the server ends the session
  });
}

void session::disconnect() {
  if (stopping_) return;
  stopping_ = true;
  server_.record([](Stats& s) { ++s.shutdowns_started; });
  // Not during the handshake or a write: the shutdown would queue its
  // close_notify behind them and never send it (a different Asio trap). The
  // read stays pending, as in Icinga 2's Disconnect().
  if (!busy_) shut_down();
}

void session::shutdown_done(const error_code& ec) {
  server_.record([&](Stats& s) { s.shutdowns_done.push_back(ec); });
  close();
}

void session::close() {
  error_code ignored;
  stream_.lowest_layer().close(ignored);
}

Server::Server(Options options) : options_(std::move(options)), tls_(ssl::context::tls_server) {
  tls_.use_certificate_chain_file(CLOSECHECK_TEST_CERT);
  tls_.use_private_key_file(CLOSECHECK_TEST_KEY, ssl::context::pem);
  serve([this](tcp::socket socket) { start_session(std::move(socket)); });
  thread_ = std::thread([this] { io_.run(); });
}

Server::~Server() {
  stop_serving([this] {
    for (auto& s : live()) s->close();
  });
}

void Server::start_session(tcp::socket socket) {
  auto s = std::make_shared<session>(std::move(socket), *this);
  {
    std::lock_guard lock(mutex_);
    std::erase_if(sessions_, [](const auto& weak) { return weak.expired(); });
    sessions_.push_back(s);
  }
  s->start();
}

void Server::disconnect_all() {
  asio::post(io_, [this] {
    for (auto& s : live()) s->disconnect();
  });
}

std::vector<std::shared_ptr<session>> Server::live() const {
  std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<session>> all;
  for (auto& weak : sessions_)
    if (auto s = weak.lock()) all.push_back(std::move(s));
  return all;
}

std::size_t Server::sessions() const {
  std::lock_guard lock(mutex_);
  return std::count_if(sessions_.begin(), sessions_.end(), [](const auto& weak) { return !weak.expired(); });
}

}  // namespace asio_ssl_shutdown_hang
