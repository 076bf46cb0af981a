// The code under test, compiled unchanged for every variant: they differ only
// in Beast's teardown of ssl::stream, which close() ends with (Boost 1.74's;
// Boost 1.74's with PR #2025's overlay; Boost 1.81's).
#include "client.hpp"

namespace beast_ws_ssl_teardown {

Client::Client(std::chrono::milliseconds deadline)
    : deadline_(deadline),
      tls_(ssl::context::tls_client),
      ws_(std::make_unique<wss_stream>(io_, tls_)) {  // the io_context's reactor fds open here
  tls_.load_verify_file(CLOSECHECK_TEST_CA);
  tls_.set_verify_mode(ssl::verify_peer);
}

Client::~Client() = default;  // the stream's destructor closes the socket if it is still open

error_code Client::run(const std::function<void(std::function<void(error_code)>)>& start) {
  std::optional<error_code> result;
  io_.restart();
  start([&](error_code ec) { result = ec; });
  io_.run_for(2 * deadline_);  // Beast's own timeout (deadline_) fires first
  if (result) {
    // Beast closes the socket itself only when its own timeout fires; after
    // any other failure (a reset, a cut record) the socket is the caller's.
    // Not after websocket::error::closed: that is the close done, and its
    // teardown is what the variants differ in.
    if (*result && *result != websocket::error::closed) {
      error_code ignored;
      beast::get_lowest_layer(*ws_).close(ignored);
    }
    return *result;
  }
  // The peer did not answer: give up on the connection, let the operation finish.
  error_code ignored;
  beast::get_lowest_layer(*ws_).close(ignored);
  io_.restart();
  io_.run_for(2 * deadline_);
  return asio::error::timed_out;
}

error_code Client::connect(std::uint16_t port, const std::string& host) {
  ws_ = std::make_unique<wss_stream>(io_, tls_);
  websocket::stream_base::timeout timeouts{};
  timeouts.handshake_timeout = deadline_;  // the upgrade and the close handshake
  timeouts.idle_timeout = websocket::stream_base::none();
  timeouts.keep_alive_pings = false;
  ws_->set_option(timeouts);
  SSL_set_tlsext_host_name(ws_->next_layer().native_handle(), "localhost");
  ws_->next_layer().set_verify_callback(ssl::host_name_verification("localhost"));

  error_code ec;
  auto address = asio::ip::make_address(host, ec);
  if (!ec) ec = run([&](auto done) {
    beast::get_lowest_layer(*ws_).async_connect(tcp::endpoint(address, port), done);
  });
  if (!ec) ec = run([&](auto done) {
    ws_->next_layer().async_handshake(ssl::stream_base::client, done);
  });
  if (!ec) ec = run([&](auto done) { ws_->async_handshake("localhost", "/", done); });
  if (ec) ws_ = std::make_unique<wss_stream>(io_, tls_);  // a failed connect leaves nothing open
  return ec;
}

error_code Client::write(const std::string& text) {
  if (!ws_->is_open()) return asio::error::not_connected;
  return run([&](auto done) {
    ws_->async_write(asio::buffer(text), [done](error_code ec, std::size_t) { done(ec); });
  });
}

error_code Client::read(std::string& text) {
  if (!ws_->is_open()) return asio::error::not_connected;
  beast::flat_buffer buffer;
  auto ec = run([&](auto done) {
    ws_->async_read(buffer, [done](error_code ec, std::size_t) { done(ec); });
  });
  text = beast::buffers_to_string(buffer.data());
  return ec;
}

error_code Client::close() {
  if (!ws_->is_open()) return asio::error::not_connected;
  // Sends the close frame, waits for the server's, then calls Beast's
  // async_teardown for ssl::stream. Beast 300 (Boost 1.74) only shuts TLS down
  // there: close() succeeds and the TCP socket stays open as long as ws_ does.
  // With PR #2025 (the overlay; Beast 301 and later, Boost 1.75+) it goes on
  // to tear the TCP connection down too.
  return run([&](auto done) { ws_->async_close(websocket::close_code::normal, done); });
}

bool Client::tcp_open() const { return beast::get_lowest_layer(*ws_).is_open(); }

std::string Client::local() const {
  if (!tcp_open()) return {};
  error_code ec;
  auto endpoint = beast::get_lowest_layer(*ws_).local_endpoint(ec);
  return ec ? std::string{} : endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
}

}  // namespace beast_ws_ssl_teardown
