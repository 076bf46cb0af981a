// websocket-eof-check against a WebSocket server not written here: Debian's
// python3-websockets 10.4 (fixtures/websocket/echo_server.py), started and
// stopped by the test on 127.0.0.1, port 0. It reports "closed <code>" per
// connection: 1000 after a closing handshake, 1006 after a bare FIN.
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "closecheck/sweep.hpp"
#include "scenario.hpp"
#include "fixtures/websocket/peers.hpp"

using namespace websocket_eof_check;
using fixtures::ws::PythonServer;

namespace {

std::string address(const PythonServer& server) { return "127.0.0.1:" + std::to_string(server.port()); }

// After a lost connection. Broken: the client's socket is ESTABLISHED, and so
// is the server's end, read from the kernel and held by python3: no FIN ever
// reached it, nothing closed the connection. When the server stops (it closes
// its connections), the client's transport closes the socket. Fixed: python
// saw the connection end without a close frame (1006).
void check_lost_connection(const closecheck::LeakResult& leaks, const std::string& local,
                           std::optional<PythonServer>& server, Client& client) {
  EXPECT_TRUE(leaks);
  EXPECT_EQ(client.connector.acquired(), 0u);
  EXPECT_EQ(client.connector.pooled(), 0u);
  EXPECT_EQ(server->next_event(), "open");
  if (broken) {
    ASSERT_EQ(leaks.leaked.size(), 1u);
    const auto& leaked = leaks.leaked[0];
    EXPECT_EQ(leaked.socket->local, local);
    std::optional<closecheck::HeldElsewhere> server_end;
    for (auto& h : closecheck::held_elsewhere(~0u))
      if (h.socket.local == address(*server) && h.socket.peer == local) server_end = h;
    ASSERT_TRUE(server_end) << "no process holds the server's end of " << local;
    EXPECT_EQ(closecheck::to_string(server_end->socket.state), "ESTAB") << "the server's end got a FIN";
    EXPECT_EQ(server_end->command, "python3");

    server.reset();
    EXPECT_TRUE(gone(leaked)) << "the server closed, and the client's transport did not";
  } else {
    EXPECT_EQ(server->next_event(), "closed 1006");
  }
}

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

// Trigger (a) against python3-websockets: the connection is released directly.
TEST(WebsocketEofCheckInterop, ReleaseWithoutClosing) {
  std::optional<PythonServer> server(std::in_place);
  Client client;
  std::unique_ptr<ClientWebSocketResponse> ws;
  std::string local;
  std::optional<std::string> thrown;
  auto leaks = closecheck::Leaks(expected_after_release(address(*server)), [&] {
    ws = open_echoing(client, server->port());
    local = ws->local_address();
    thrown = release_directly(*ws);
  });
  EXPECT_EQ(thrown, broken ? std::optional(missing_is_eof) : std::nullopt);
  check_lost_connection(leaks, local, server, client);
  ws->close();
  EXPECT_TRUE(client.log.lines().empty());
}

// Trigger (b) against python3-websockets: one task cancelled, the loop runs
// on, the response dropped by hand; the WebSocket stays.
TEST(WebsocketEofCheckInterop, CancelledThenDropped) {
  std::optional<PythonServer> server(std::in_place);
  Client client;
  Open open;
  auto leaks = closecheck::Leaks(expected_after_release(address(*server)),
                                 [&] { open = cancel_then_drop_response(client, server->port()); });
  EXPECT_EQ(client.log.lines(), broken ? std::vector{swallowed_error} : std::vector<std::string>{});
  check_lost_connection(leaks, open.local, server, client);
  open.ws->close();
}

// The WebSocket dropped whole against python3-websockets, the session open:
// broken, the connection's finalizer closes it after the logged error; both
// variants end the connection without a close frame.
TEST(WebsocketEofCheckInterop, DroppedWithoutClosing) {
  PythonServer server;
  Client client;
  EXPECT_TRUE(closecheck::NoLeaks([&] { drop_everything(client, server.port()); }));
  EXPECT_EQ(client.log.lines(),
            (broken ? std::vector{swallowed_error, unclosed_connection} : std::vector<std::string>{}));
  EXPECT_EQ(server.next_event(), "open");
  EXPECT_EQ(server.next_event(), "closed 1006");
}
