// websocket-eof-check: the same tests run against broken.cpp and fixed.cpp.
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "closecheck/sweep.hpp"
#include "scenario.hpp"
#include "fixtures/websocket/peers.hpp"

using namespace websocket_eof_check;
using closecheck::TcpState;
using fixtures::ws::Server;

namespace {

// The client closed the connection (a FIN, no close frame): the server saw it
// end, and the client's end, closed first, is the one in TIME_WAIT.
void check_closed_by_the_client(const std::string& local, Server& server) {
  EXPECT_TRUE(server.wait_for([](const Server::Stats& s) { return s.opened == 1 && s.closed == 1; },
                              fixtures::bound(std::chrono::seconds(10))))
      << "the server did not see the connection end";
  std::optional<closecheck::DiagSocket> client_end;
  EXPECT_TRUE(closecheck::eventually([&] {
    client_end = tcp_socket(local, server.address());
    return client_end && client_end->state == TcpState::time_wait;
  }, {.settle = fixtures::bound(std::chrono::seconds(5))})) << "the client did not close first";
}

// After a lost connection. Broken: the one leaked socket is the client's,
// ESTABLISHED to the server, and nothing has told the server (its end, read
// from the kernel, is ESTABLISHED too). The pool has forgotten it, so closing
// the connector leaves it open. It ends only when the server closes: the
// transport, still reading as asyncio's does, gets EOF and closes itself, and
// the server's end is left in TIME_WAIT. Fixed: the client closed it (a FIN,
// no close frame), so the server saw it end and the client's end is the one
// in TIME_WAIT. Either way the pool tracks nothing.
void check_lost_connection(const closecheck::LeakResult& leaks, const std::string& local, Server& server,
                           Client& client) {
  EXPECT_TRUE(leaks);
  EXPECT_EQ(client.connector.acquired(), 0u);
  EXPECT_EQ(client.connector.pooled(), 0u);
  if (broken) {
    ASSERT_EQ(leaks.leaked.size(), 1u);
    const auto& leaked = leaks.leaked[0];
    EXPECT_EQ(leaked.socket->local, local);
    EXPECT_EQ(leaked.socket->peer, server.address());
    auto server_end = tcp_socket(server.address(), local);
    ASSERT_TRUE(server_end) << "the kernel has no server end of " << local;
    EXPECT_EQ(closecheck::to_string(server_end->state), "ESTAB") << "the server's end got a FIN";
    EXPECT_EQ(server.stats().open(), 1) << "the server saw the connection end";

    auto now = after_connector_closes(client, leaked);
    ASSERT_TRUE(now) << "closing the connector closed it: the pool still tracked it";
    EXPECT_EQ(closecheck::to_string(now->socket->state), "ESTAB");

    server.close_all();
    EXPECT_TRUE(gone(leaked)) << "the server closed, and the client's transport did not";
    auto end = server_end_after_both_closed(server.address(), local);
    ASSERT_TRUE(end) << "the kernel has no server end of " << local;
    EXPECT_EQ(closecheck::to_string(end->state), "TIME_WAIT") << "the client did not close after the server";
  } else {
    check_closed_by_the_client(local, server);
  }
}

}  // namespace

TEST(WebsocketEofCheck, NormalSessionIsClean) {
  Server server;
  Client client;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto ws = open_echoing(client, server.port());
    ws->send_str("second");
    auto m = ws->receive();
    EXPECT_EQ(m.data, "second");
    ws->close();
    EXPECT_TRUE(ws->closed());
  }, client_side(server)));
  EXPECT_TRUE(server.wait_for([](const Server::Stats& s) { return s.closed == 1; }));
  EXPECT_EQ(server.stats().close_frames, 1);
  EXPECT_TRUE(client.log.lines().empty());
  EXPECT_EQ(client.connector.acquired(), 0u);
}

// Trigger (a), upstream's test_websocket_connection_not_closed_properly: the
// connection under an open WebSocket is released directly. Broken: the error
// reaches the caller (nothing to swallow it), after the pool has forgotten
// the connection. Then, as upstream's test does, the response is closed.
TEST(WebsocketEofCheck, ReleaseWithoutClosing) {
  Server server;
  Client client;
  std::unique_ptr<ClientWebSocketResponse> ws;
  std::string local;
  std::optional<std::string> thrown;
  auto leaks = closecheck::Leaks(expected_after_release(server.address()), [&] {
    ws = open_echoing(client, server.port());
    local = ws->local_address();
    thrown = release_directly(*ws);
  }, closecheck::Reclaim::keep, client_side(server));
  EXPECT_EQ(thrown, broken ? std::optional(missing_is_eof) : std::nullopt);
  EXPECT_TRUE(client.log.lines().empty()) << "a direct release has no destructor to log in";
  check_lost_connection(leaks, local, server, client);
  ws->close();
  EXPECT_TRUE(ws->closed());
  ws.reset();
  EXPECT_TRUE(client.log.lines().empty());
}

// The destructor path of the traceback in #9880 (ClientResponse.__del__ ->
// Connection.release()), as upstream's test takes it: the response is
// dropped by hand (del ws._response) while the WebSocket, and its connection,
// stay. Broken: the error is logged once, never thrown.
TEST(WebsocketEofCheck, ResponseDroppedWithoutClosing) {
  Server server;
  Client client;
  Open open;
  auto leaks = closecheck::Leaks(expected_after_release(server.address()),
                                 [&] { open = drop_response(client, server.port()); },
                                 closecheck::Reclaim::keep, client_side(server));
  EXPECT_EQ(client.log.lines(), broken ? std::vector{swallowed_error} : std::vector<std::string>{});
  check_lost_connection(leaks, open.local, server, client);
  open.ws->close();
  open.ws.reset();
  EXPECT_EQ(client.log.lines(), broken ? std::vector{swallowed_error} : std::vector<std::string>{})
      << "closed, the connection has nothing left to finalize";
}

// Trigger (b), upstream's test_websocket_connection_cancellation: one task on
// the loop is cancelled (a receive() gets Cancelled) while the loop runs on
// (the WebSocket still echoes), then the response is dropped by hand.
TEST(WebsocketEofCheck, CancelledThenDropped) {
  Server server;
  Client client;
  Open open;
  auto leaks = closecheck::Leaks(expected_after_release(server.address()),
                                 [&] { open = cancel_then_drop_response(client, server.port()); },
                                 closecheck::Reclaim::keep, client_side(server));
  EXPECT_EQ(client.log.lines(), broken ? std::vector{swallowed_error} : std::vector<std::string>{});
  check_lost_connection(leaks, open.local, server, client);
  open.ws->close();
  open.ws.reset();
}

// The WebSocket dropped whole, the session still open. Broken: the response's
// destructor logs the error, and then the connection, dying still holding its
// protocol, closes it itself with an "Unclosed connection" warning (aiohttp's
// Connection.__del__): nothing leaks. Fixed: the release closed it, silently.
TEST(WebsocketEofCheck, DroppedWithoutClosing) {
  Server server;
  Client client;
  std::string local;
  EXPECT_TRUE(closecheck::NoLeaks([&] { local = drop_everything(client, server.port()); }, client_side(server)));
  EXPECT_EQ(client.log.lines(),
            (broken ? std::vector{swallowed_error, unclosed_connection} : std::vector<std::string>{}));
  EXPECT_EQ(client.connector.acquired(), 0u);
  EXPECT_EQ(client.connector.pooled(), 0u);
  check_closed_by_the_client(local, server);
}

// Bad input: the client reports an error, nothing leaks, nothing hangs.
namespace {

void expect_error_from(Server::Behaviour behaviour, const std::string& error) {
  Server server({.behaviour = behaviour, .oversize = 1 << 20});
  Client client;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto ws = ws_connect(client.connector, server.port(), client.log.logger());
    auto m = ws->receive();
    EXPECT_EQ(m.type, Message::Type::error);
    EXPECT_EQ(m.data, error);
    EXPECT_TRUE(ws->closed()) << "an error ends the connection";
  }, client_side(server)));
  EXPECT_TRUE(client.log.lines().empty());
  EXPECT_EQ(client.connector.acquired(), 0u);
  EXPECT_TRUE(server.wait_for([](const Server::Stats& s) { return s.closed == 1; }));
}

}  // namespace

TEST(WebsocketEofCheck, MalformedFrameIsAnError) {
  expect_error_from(Server::Behaviour::malformed_frame, "connection closed without a close frame");
}

TEST(WebsocketEofCheck, CloseMidFrameIsAnError) {
  expect_error_from(Server::Behaviour::close_mid_frame, "connection closed in the middle of a message");
}

TEST(WebsocketEofCheck, OversizeMessageIsAnError) {
  expect_error_from(Server::Behaviour::oversize_message, "message too big: more than 65536 bytes");
}

TEST(WebsocketEofCheck, UnansweredUpgradeTimesOut) {
  fixtures::ws::SilentPeer peer;
  Client client({.timeout_secs = 1});
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto start = std::chrono::steady_clock::now();
    try {
      ws_connect(client.connector, peer.port(), client.log.logger());
      ADD_FAILURE() << "ws_connect to a peer that never answers returned";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "WebSocket connect failed: no answer to the upgrade");
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  }));
  EXPECT_EQ(client.connector.acquired(), 0u);
}
