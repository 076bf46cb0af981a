// A wss:// client on Beast that owns its connection for its whole life, as a
// reconnecting client or a connection pool does: close() ends the WebSocket
// session, the object (and the stream in it) stays until it is destroyed.
//
// Every call runs Beast's asynchronous operation on the client's own
// io_context for at most `deadline`; a peer that does not answer in time gets
// its connection closed and the call returns asio::error::timed_out. A call
// that fails closes the connection too (Beast does so only on its own
// timeout); websocket::error::closed from read() is not a failure.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "beast.hpp"

namespace beast_ws_ssl_teardown {

class Client {
 public:
  explicit Client(std::chrono::milliseconds deadline = std::chrono::seconds(10));
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // TCP connect, TLS handshake (verifying the test CA's localhost certificate),
  // WebSocket upgrade. On failure nothing stays open.
  error_code connect(std::uint16_t port, const std::string& host = "127.0.0.1");
  error_code write(const std::string& text);
  // The next message; websocket::error::closed once the server has closed
  // (Beast answers the close frame and tears the connection down first).
  error_code read(std::string& text);
  // websocket::stream::close(): the close handshake, then Beast's teardown.
  error_code close();

  bool tcp_open() const;      // the TCP socket under the TLS stream
  std::string local() const;  // its address, as ss shows it ("" when closed)

 private:
  error_code run(const std::function<void(std::function<void(error_code)>)>& start);

  std::chrono::milliseconds deadline_;
  asio::io_context io_;
  ssl::context tls_;
  std::unique_ptr<wss_stream> ws_;
};

}  // namespace beast_ws_ssl_teardown
