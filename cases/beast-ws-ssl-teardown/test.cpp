// beast-ws-ssl-teardown: the same tests, the same client.cpp, built against
// Boost 1.74 (broken), Boost 1.74 with PR #2025's teardown (fixed-overlay)
// and Boost 1.81 (fixed).
#include <gtest/gtest.h>

#include <list>

#include "closecheck/gtest.hpp"
#include "closecheck/netns.hpp"
#include "scenario.hpp"

using namespace beast_ws_ssl_teardown;
using closecheck::TcpState;

TEST(BeastWsSslTeardown, CloseSucceedsAndTheTcpSocketStays) {
  Server server;
  Client client;
  auto leaks = closecheck::Leaks(expected_after_close(1, server.address()),
                                 [&] { echo_then_close(client, server.port()); });  // the client still owns it
  EXPECT_TRUE(leaks);
  EXPECT_EQ(client.tcp_open(), broken);
  EXPECT_TRUE(closecheck::eventually([&] { return server.closed_sessions() == 1; }));
  if (broken) {
    ASSERT_EQ(leaks.leaked.size(), 1u);
    EXPECT_EQ(leaks.leaked[0].socket->local, client.local());
  }
}

// The other path into the same teardown: the server closes first, the
// client's read() answers the close frame and reports websocket::error::closed.
TEST(BeastWsSslTeardown, ServerClosesFirst) {
  Server server;
  Client client;
  auto leaks = closecheck::Leaks(
      expected_after_close(1, server.address()),
      [&] {
        ASSERT_FALSE(client.connect(server.port()));
        ASSERT_FALSE(client.write("bye"));
        std::string text;
        EXPECT_EQ(client.read(text), websocket::error::closed);
      });
  EXPECT_TRUE(leaks);
  EXPECT_EQ(client.tcp_open(), broken);
}

// Both ends on the same Beast, and the server keeps its closed sessions: in
// 1.74 neither end closes TCP, both sockets stay ESTABLISHED with nothing
// left to say (the "WSS client + server"). With the fix both are gone.
TEST(BeastWsSslTeardown, APeerWithTheSameBugLeavesBothEndsEstablished) {
  Server server(Server::Behaviour::keep_closed);
  Client client;
  std::vector<closecheck::Expected> expected;
  if (broken)
    expected = {{1, closecheck::tcp(TcpState::established).local(server.address())},
                {1, closecheck::tcp(TcpState::established).peer(server.address())}};
  auto leaks = closecheck::Leaks(expected, [&] { echo_then_close(client, server.port()); });  // the server and the client own them
  EXPECT_TRUE(leaks);
  EXPECT_TRUE(closecheck::eventually([&] { return server.closed_sessions() == 1; }));
  EXPECT_EQ(client.tcp_open(), broken);
}

// A pool of 50 clients that closed their sessions: one CLOSE_WAIT each while they live.
TEST(BeastWsSslTeardown, FiftyPooledClientsKeepFiftySockets) {
  Server server;
  std::list<Client> pool(50);  // each with its io_context's fds, opened before the block
  auto leaks = closecheck::Leaks(
      expected_after_close(50, server.address()),
      [&] {
        int i = 0;
        for (auto& client : pool) echo_then_close(client, server.port(), "message " + std::to_string(i++));
      });
  EXPECT_TRUE(leaks);
  EXPECT_TRUE(closecheck::eventually([&] { return server.closed_sessions() == 50; }));
}

// Upstream's answer ("the application will destroy the socket object"), and
// the workaround on 1.74: the socket goes with the stream. Every variant.
TEST(BeastWsSslTeardown, DestroyingTheClientClosesTheSocket) {
  Server server;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    Client client;
    echo_then_close(client, server.port());
  }));
}

// --- Bad input: an error, never a hang or a leak (both variants) ---------

TEST(BeastWsSslTeardownBadInput, PeerNeverAnswersTheClose) {
  Server server(Server::Behaviour::never_answers_close);
  Client client(std::chrono::milliseconds(500));
  // Beast's close timeout closes the client's socket; the server's end, which
  // the server holds and never reads, gets the FIN and waits in CLOSE_WAIT.
  auto leaks = closecheck::Leaks(
      {{1, closecheck::tcp(TcpState::close_wait).local(server.address())}},
      [&] {
        ASSERT_FALSE(client.connect(server.port()));
        EXPECT_EQ(client.close(), beast::error::timeout);
      });
  EXPECT_TRUE(leaks);
  EXPECT_FALSE(client.tcp_open());
}

TEST(BeastWsSslTeardownBadInput, ServerThatIsNotTls) {
  Server server(Server::Behaviour::not_tls);
  Client client;
  error_code ec;
  EXPECT_TRUE(closecheck::NoLeaks([&] { ec = client.connect(server.port()); }));
  EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << ec.message();
  EXPECT_FALSE(client.tcp_open());
}

TEST(BeastWsSslTeardownBadInput, NothingListening) {
  // The released port must stay free: no other test may take it meanwhile.
  std::string why;
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  std::uint16_t port;
  {
    Server gone;  // a port that was just free: bound, then released
    port = gone.port();
  }
  Client client;
  error_code ec;
  EXPECT_TRUE(closecheck::NoLeaks([&] { ec = client.connect(port); }));
  EXPECT_EQ(ec, asio::error::connection_refused);
}

TEST(BeastWsSslTeardownBadInput, CallsBeforeConnect) {
  Client client;
  std::string text;
  EXPECT_EQ(client.close(), asio::error::not_connected);
  EXPECT_EQ(client.write("x"), asio::error::not_connected);
  EXPECT_EQ(client.read(text), asio::error::not_connected);
  EXPECT_EQ(client.connect(1, "not an address"), asio::error::invalid_argument);
}
