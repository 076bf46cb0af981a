// beast-ws-ssl-teardown with a server not written here: Debian's
// python3-websockets over TLS. It closes its end after the close handshake
// and the TLS shutdown, as RFC 6455 asks of a server.
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "scenario.hpp"
#include "fixtures/websocket/peers.hpp"

using namespace beast_ws_ssl_teardown;

TEST(BeastWsSslTeardownInterop, PythonWebsocketsServer) {
  fixtures::ws::PythonServer python({"--tls", CLOSECHECK_TEST_CERT, CLOSECHECK_TEST_KEY});
  Client client;
  auto leaks = closecheck::Leaks(
      expected_after_close(1, "127.0.0.1:" + std::to_string(python.port())),
      [&] { echo_then_close(client, python.port()); });
  EXPECT_TRUE(leaks);
  EXPECT_EQ(client.tcp_open(), broken);
  EXPECT_EQ(python.next_event(), "open");
  EXPECT_EQ(python.next_event(), "closed 1000");  // a clean close handshake on its side
}
