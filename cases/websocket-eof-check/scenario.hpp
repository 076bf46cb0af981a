// The scenarios, shared by the tests and ci/corpus.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "client.hpp"
#include "closecheck/closecheck.hpp"
#include "websocket/server.hpp"

namespace websocket_eof_check {

inline constexpr bool broken = CLOSECHECK_BROKEN;

// What the broken release path logs, once per lost connection.
inline const std::string swallowed_error =
    "Exception ignored in ~ClientWebSocketResponse(): 'WebSocketDataQueue' object has no attribute 'is_eof'";

// The client's log, captured.
class Log {
 public:
  Logger logger() {
    return [this](const std::string& line) {
      std::lock_guard lock(mutex_);
      lines_.push_back(line);
    };
  }
  std::vector<std::string> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> lines_;
};

// A client: its loop and its connector. Make it before a leak check's
// baseline: an lws context has descriptors of its own (its wake-up pipe).
struct Client {
  explicit Client(Loop::Options options = {}) : loop(options) {}
  Log log;
  Loop loop;
  Connector connector{loop};
};

// The leak check looks at the client: the in-process server's own sockets
// (listening, accepted) are the fixture's business.
inline closecheck::Options client_side(const fixtures::ws::Server& server) {
  closecheck::Options options;
  options.ignore.push_back(server.owns());
  return options;
}

// Opens a WebSocket and checks it echoes.
inline std::unique_ptr<ClientWebSocketResponse> open_echoing(Client& client, std::uint16_t port) {
  auto ws = ws_connect(client.connector, port, client.log.logger());
  ws->send_str("hello");
  auto m = ws->receive();
  if (m.type != Message::Type::text || m.data != "hello")
    throw std::runtime_error("the server did not echo: " + m.data);
  return ws;
}

// Trigger (a), upstream's first test: the response is let go without closing
// the WebSocket; its destructor releases the connection. Returns the client's
// local address.
inline std::string drop_without_closing(Client& client, std::uint16_t port) {
  auto ws = open_echoing(client, port);
  return ws->local_address();  // ws dies here, open
}

// What a lost connection leaves behind: broken, the client's socket, open and
// connected to the server; fixed, nothing. (Broken: the client's lws context
// still holds the wsi and closes it when the Loop is destroyed, so the test
// keeps it rather than closing it from under lws.)
inline std::vector<closecheck::Expected> expected_after_release(const std::string& server_address) {
  if (!broken) return {};
  return {{1, closecheck::tcp(closecheck::TcpState::established).peer(server_address)
              .opened_in(CLOSECHECK_CASE_SOURCES)}};
}

// Broken, then: the server closes its end. Nobody reads the lost socket (the
// pool forgot it, and a connection is read only while someone receives), so
// it stays in CLOSE_WAIT. Returns it as it is then.
inline std::optional<closecheck::Fd> after_server_closes(fixtures::ws::Server& server,
                                                         const closecheck::Fd& leaked) {
  server.close_all();
  std::optional<closecheck::Fd> now;
  closecheck::eventually([&] {
    now = closecheck::inspect(leaked.number);
    return now && now->same_object(leaked) && now->socket->state == closecheck::TcpState::close_wait;
  }, {.settle = std::chrono::seconds(5)});
  return now && now->same_object(leaked) ? now : std::nullopt;
}

}  // namespace websocket_eof_check
