// websocket-eof-check against a WebSocket server not written here: Debian's
// python3-websockets 10.4 (fixtures/websocket/echo_server.py), started and
// stopped by the test on 127.0.0.1, port 0. It reports "closed <code>" per
// connection: 1000 after a closing handshake, 1006 after a bare FIN.
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "scenario.hpp"
#include "websocket/peers.hpp"

using namespace websocket_eof_check;
using fixtures::ws::PythonServer;

namespace {
std::string address(const PythonServer& server) { return "127.0.0.1:" + std::to_string(server.port()); }
}  // namespace

TEST(WebsocketEofCheckInterop, NormalSessionIsClean) {
  PythonServer server;
  Client client;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto ws = open_echoing(client, server.port());
    ws->close();
  }));
  EXPECT_EQ(server.next_event(), "open");
  EXPECT_EQ(server.next_event(), "closed 1000");
  EXPECT_TRUE(client.log.lines().empty());
}

// Trigger (a) against python3-websockets: fixed leaves nothing and the server
// sees the connection end; broken loses the socket.
TEST(WebsocketEofCheckInterop, ReleaseWithoutClosing) {
  PythonServer server;
  Client client;
  auto verdict = closecheck::expect_leaks(expected_after_release(address(server)),
                                          [&] { drop_without_closing(client, server.port()); },
                                          closecheck::Reclaim::keep);
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(client.connector.acquired(), 0u);
  EXPECT_EQ(server.next_event(), "open");
  if (broken) {
    EXPECT_EQ(client.log.lines(), std::vector{swallowed_error});
    EXPECT_EQ(server.next_event(std::chrono::milliseconds(200)), std::nullopt) << "nothing closed it";
  } else {
    EXPECT_TRUE(client.log.lines().empty());
    EXPECT_EQ(server.next_event(), "closed 1006");
  }
}

// Trigger (b) against python3-websockets.
TEST(WebsocketEofCheckInterop, CancelledThenDropped) {
  PythonServer server;
  Client client;
  auto verdict = closecheck::expect_leaks(expected_after_release(address(server)), [&] {
    auto ws = open_echoing(client, server.port());
    auto pending = ws->receive_async();
    client.loop.stop();
    EXPECT_THROW(pending.get(), Cancelled);
  }, closecheck::Reclaim::keep);
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(server.next_event(), "open");
  if (broken) {
    EXPECT_EQ(client.log.lines(), std::vector{swallowed_error});
  } else {
    EXPECT_TRUE(client.log.lines().empty());
    EXPECT_EQ(server.next_event(), "closed 1006");
  }
}
