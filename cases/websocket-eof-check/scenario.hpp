// The scenarios, shared by the tests and ci/corpus.
#pragma once

#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "client.hpp"
#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"
#include "closecheck/sweep.hpp"
#include "fixtures/corpus.hpp"  // mark(): the report's time axis
#include "fixtures/variant.hpp"
#include "fixtures/websocket/server.hpp"

namespace websocket_eof_check {

inline constexpr const bool& broken = fixtures::variant.broken;

// What the broken queue throws when the release path asks it about EOF.
inline const std::string missing_is_eof = "'WebSocketDataQueue' object has no attribute 'is_eof'";
// What the broken release path logs when the response's destructor releases.
inline const std::string swallowed_error = "Exception ignored in ~ClientResponse(): " + missing_is_eof;
// What a connection that dies still holding its protocol logs (Connection.__del__).
inline const std::string unclosed_connection = "Unclosed connection";

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

// Trigger (a), upstream's test_websocket_connection_not_closed_properly: the
// connection under an open WebSocket is released directly (resp._conn.release()).
// Returns what release() threw, which reaches the caller; nullopt if nothing.
inline std::optional<std::string> release_directly(ClientWebSocketResponse& ws) {
  try {
    ws.connection().release();
  } catch (const std::exception& e) {
    return e.what();
  }
  return std::nullopt;
}

// An open WebSocket, and the client's address of its connection.
struct Open {
  std::unique_ptr<ClientWebSocketResponse> ws;
  std::string local;
};

// The destructor path of the traceback in #9880 (ClientResponse.__del__ ->
// Connection.release()), as upstream's test takes it: `del ws._response`.
// The response dies unclosed and releases the connection; the WebSocket, and
// the connection it holds, stay (returned).
inline Open drop_response(Client& client, std::uint16_t port) {
  Open open{open_echoing(client, port), {}};
  open.local = open.ws->local_address();
  fixtures::corpus::mark("WebSocket open, echoed");
  open.ws->drop_response();
  return open;
}

// Trigger (b), upstream's test_websocket_connection_cancellation: a task on
// the loop is cancelled (here: one waiting in receive()), the loop runs on,
// then the response is dropped by hand; the WebSocket stays (returned).
inline Open cancel_then_drop_response(Client& client, std::uint16_t port) {
  Open open{open_echoing(client, port), {}};
  auto& ws = *open.ws;
  open.local = ws.local_address();
  auto task = ws.receive_task();
  task.cancel();
  if (task.result().wait_for(std::chrono::seconds(5)) != std::future_status::ready)
    throw std::runtime_error("the cancelled receive did not end");
  try {
    auto m = task.result().get();
    throw std::runtime_error("the cancelled receive got a message: " + m.data);
  } catch (const Cancelled&) {
  }
  // One task was cancelled, not the loop: the same WebSocket still echoes.
  ws.send_str("after the cancel");
  auto m = ws.receive();
  if (m.type != Message::Type::text || m.data != "after the cancel")
    throw std::runtime_error("no echo after the cancel: " + m.data);
  ws.drop_response();
  return open;
}

// Everything let go at once, the session still open: the response's
// destructor releases (broken: logs the error), then the connection's own
// finalizer closes what it still holds. Returns the client's address.
inline std::string drop_everything(Client& client, std::uint16_t port) {
  auto ws = open_echoing(client, port);
  return ws->local_address();  // ws dies here, open
}

// What a lost connection leaves behind: broken, the client's socket, open and
// connected to the server; fixed, nothing. (Broken: the client's lws context
// still holds the wsi and closes it when the peer closes, or when the Loop is
// destroyed, so the test keeps it rather than closing it from under lws.)
inline std::vector<closecheck::Expected> expected_after_release(const std::string& server_address) {
  if (!broken) return {};
  return {{1, closecheck::tcp(closecheck::TcpState::established).peer(server_address)
              .opened_in(fixtures::variant.opened_in)}};
}

// The kernel's view of one connection, by its two addresses (sock_diag): any
// state, TIME_WAIT and orphans included; nullopt if the kernel has no such socket.
inline std::optional<closecheck::DiagSocket> tcp_socket(const std::string& local, const std::string& peer) {
  for (auto& s : closecheck::sweep(~0u))
    if (s.local == local && s.peer == peer) return s;
  return std::nullopt;
}

// Broken, after the leak: the pool forgot the socket, so closing the connector
// (session.close()) leaves it as it was. Returns it as it is then.
inline std::optional<closecheck::Fd> after_connector_closes(Client& client, const closecheck::Fd& leaked) {
  client.connector.close();
  auto now = closecheck::inspect(leaked.number);
  return now && now->same_object(leaked) ? now : std::nullopt;
}

// Broken, then: the peer closes its end. The orphaned transport still reads
// (asyncio's would too), gets EOF and closes itself. True once the leaked
// descriptor is gone (bounded).
inline bool gone(const closecheck::Fd& leaked) {
  return closecheck::eventually([&] {
    auto now = closecheck::inspect(leaked.number);
    return !(now && now->same_object(leaked));
  }, {.settle = std::chrono::seconds(5)});
}

// The same, read from the server's side: the server closed first, so once the
// client's transport has closed too, the server's end is the one in TIME_WAIT.
// Its state then (bounded wait for TIME_WAIT), or nullopt if the kernel has none.
inline std::optional<closecheck::DiagSocket> server_end_after_both_closed(const std::string& server_address,
                                                                        const std::string& client_local) {
  std::optional<closecheck::DiagSocket> end;
  closecheck::eventually([&] {
    end = tcp_socket(server_address, client_local);
    return end && end->state == closecheck::TcpState::time_wait;
  }, {.settle = std::chrono::seconds(5)});
  return end;
}

}  // namespace websocket_eof_check
