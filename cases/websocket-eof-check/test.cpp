// websocket-eof-check: the same tests run against broken.cpp and fixed.cpp.
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "scenario.hpp"
#include "websocket/peers.hpp"

using namespace websocket_eof_check;
using closecheck::TcpState;
using fixtures::ws::Server;

namespace {

// After a lost connection: broken, the one leaked client socket is reported,
// then reaches CLOSE_WAIT when the server closes (nobody reads it); fixed, the
// server saw the connection end. Either way the pool has forgotten it.
void check_after_release(const closecheck::Verdict& verdict, const std::string& local, Server& server,
                         Client& client) {
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(client.connector.acquired(), 0u);
  EXPECT_EQ(client.connector.pooled(), 0u);
  if (broken) {
    ASSERT_EQ(verdict.leaked.size(), 1u);
    const auto& leaked = verdict.leaked[0];
    EXPECT_EQ(leaked.socket->local, local);
    EXPECT_EQ(leaked.socket->peer, server.address());
    EXPECT_EQ(client.log.lines(), std::vector{swallowed_error});
    EXPECT_EQ(server.stats().open(), 1) << "the server never saw the connection end";

    auto now = after_server_closes(server, leaked);
    ASSERT_TRUE(now) << "the leaked socket is gone";
    std::cout << "after the server closed: " << closecheck::describe(*now) << '\n';
    EXPECT_EQ(now->socket->state, TcpState::close_wait);
  } else {
    EXPECT_TRUE(client.log.lines().empty());
    EXPECT_TRUE(server.wait_for([](const Server::Stats& s) { return s.opened == 1 && s.closed == 1; }))
        << "the server did not see the connection end";
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

// Trigger (a): release the connection without closing the WebSocket.
TEST(WebsocketEofCheck, ReleaseWithoutClosing) {
  Server server;
  Client client;
  std::string local;
  auto verdict = closecheck::expect_leaks(expected_after_release(server.address()),
                                          [&] { local = drop_without_closing(client, server.port()); },
                                          closecheck::Reclaim::keep, client_side(server));
  check_after_release(verdict, local, server, client);
}

// Trigger (b): cancel the operation that opened the WebSocket (its loop stops
// while it waits for a message), then drop the response.
TEST(WebsocketEofCheck, CancelledThenDropped) {
  Server server;
  Client client;
  std::string local;
  auto verdict = closecheck::expect_leaks(expected_after_release(server.address()), [&] {
    auto ws = open_echoing(client, server.port());
    local = ws->local_address();
    auto pending = ws->receive_async();
    client.loop.stop();
    EXPECT_THROW(pending.get(), Cancelled);
  }, closecheck::Reclaim::keep, client_side(server));
  check_after_release(verdict, local, server, client);
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
