// asio-ssl-shutdown-hang: the same tests run against broken.cpp and fixed.cpp.
// The server ends each session with a TLS shutdown while its read is pending;
// what follows depends on the peer.
#include <gtest/gtest.h>

#include <optional>

#include "closecheck/eventually.hpp"
#include "closecheck/gtest.hpp"
#include "scenario.hpp"

using namespace asio_ssl_shutdown_hang;
namespace ssl_error = boost::asio::ssl::error;

namespace {
// Three default deadlines: the broken shutdown must still be pending after it.
constexpr auto past_the_deadline = std::chrono::milliseconds(750);
// For the tests about what the peer's close does: it comes long before this
// deadline, even on a busy machine.
const Server::Options slow_deadline{.shutdown_timeout = std::chrono::seconds(2)};
}  // namespace

// The peer stays silent with its socket open: it neither reads the
// close_notify nor sends one. Broken: the server's socket stays ESTABLISHED,
// owned by the pending shutdown, for as long as the peer does nothing.
TEST(AsioSslShutdownHang, SilentPeerKeepsItsSocketOpen) {
  Server server;
  std::vector<std::string> own;
  std::optional<Peer> peer;
  auto leaks = closecheck::Leaks(
      stuck(server, TcpState::established, 1, "127.0.0.1:*"),
      [&] {
        peer.emplace(server);
        own.push_back(peer->address());
        server.disconnect_all();
        ASSERT_TRUE(peer->close_notify_arrived());
        if (!broken) ASSERT_TRUE(shutdowns_end(server, 1, fixtures::bound(std::chrono::seconds(10))));
      },
      closecheck::Reclaim::keep, ignoring(own));
  EXPECT_TRUE(leaks);
  if (broken) {
    ASSERT_EQ(leaks.leaked.size(), 1u);
    EXPECT_EQ(leaks.leaked[0].socket->peer, peer->address());
  }
  EXPECT_EQ(peer->unread(), 24);  // the close_notify: one TLS 1.3 alert record
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
  auto stats = server.stats();
  EXPECT_EQ(stats.shutdowns_started, 1u);
  if (broken) {
    EXPECT_TRUE(stats.reads_ended.empty());  // still pending: nothing came
  } else {
    // The deadline closed the socket: the read ends with operation_aborted;
    // the shutdown, which was waiting for the read's turn, with bad_descriptor.
    ASSERT_EQ(stats.reads_ended.size(), 1u);
    EXPECT_EQ(stats.reads_ended[0], boost::asio::error::operation_aborted);
    ASSERT_EQ(stats.shutdowns_done.size(), 1u);
    EXPECT_EQ(stats.shutdowns_done[0], boost::asio::error::bad_descriptor);
  }
}

// The peer reads the close_notify, then closes its TCP without sending one
// (Icinga 2 #7203). Its FIN ends the pending read with stream_truncated, and
// the shutdown's own read waits for a wake-up that never comes. Broken: the
// server's socket stays in CLOSE_WAIT.
TEST(AsioSslShutdownHang, PeerReadsCloseNotifyThenClosesTcp) {
  Server server(slow_deadline);
  std::string peer;
  auto leaks = closecheck::Leaks(stuck(server, TcpState::close_wait),
                                 [&] { peer = peer_closes_without_close_notify(server); });
  EXPECT_TRUE(leaks);
  if (broken) {
    ASSERT_EQ(leaks.leaked.size(), 1u);
    EXPECT_EQ(leaks.leaked[0].socket->peer, peer);
  }
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
  ASSERT_TRUE(server.wait_for([](const Stats& s) { return s.reads_ended.size() == 1; }));
  EXPECT_EQ(server.stats().reads_ended[0], ssl_error::stream_truncated);
}

// The peer closes its TCP with the close_notify unread in its receive queue:
// its kernel sends RST. The pending read ends with ECONNRESET. Broken: the
// server's socket stays open in CLOSE (the kernel has forgotten the peer).
TEST(AsioSslShutdownHang, PeerClosesWithTheCloseNotifyUnread) {
  Server server(slow_deadline);
  auto leaks = closecheck::Leaks(stuck(server, TcpState::close), [&] {
    Peer peer(server);
    server.disconnect_all();
    ASSERT_TRUE(peer.close_notify_arrived());
    EXPECT_GT(peer.unread(), 0);
    close_reaches_a_busy_server(server, [&] { peer.close_tcp(); });  // RST
    if (!broken) ASSERT_TRUE(shutdowns_end(server, 1, std::chrono::seconds(10)));
  });
  EXPECT_TRUE(leaks);
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
  ASSERT_TRUE(server.wait_for([](const Stats& s) { return s.reads_ended.size() == 1; }));
  EXPECT_EQ(server.stats().reads_ended[0], boost::asio::error::connection_reset);
}

// The polite peer answers with its own close_notify: both variants close,
// and the pending read ends with eof.
TEST(AsioSslShutdownHang, PeerAnswersCloseNotify) {
  Server server({.shutdown_timeout = std::chrono::seconds(30)});  // the peer, not the deadline, ends it
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    Peer peer(server);
    server.disconnect_all();
    ASSERT_TRUE(peer.close_notify_arrived());
    ASSERT_TRUE(peer.read_close_notify());
    EXPECT_TRUE(peer.answer_close_notify());
    ASSERT_TRUE(shutdowns_end(server, 1, std::chrono::seconds(10)));
    peer.close_tcp();
  }));
  auto stats = server.stats();
  ASSERT_EQ(stats.reads_ended.size(), 1u);
  EXPECT_EQ(stats.reads_ended[0], boost::asio::error::eof);
  // The read took the peer's close_notify; the shutdown, woken from its wait
  // for the read's turn, completes, but Boost 1.74's io_op hands it the
  // wake-up's operation_aborted as its result.
  ASSERT_EQ(stats.shutdowns_done.size(), 1u);
  EXPECT_EQ(stats.shutdowns_done[0], boost::asio::error::operation_aborted);
}

// The pile-up: every peer that goes away without close_notify leaves one
// CLOSE_WAIT socket in the broken server, until it runs out of descriptors.
TEST(AsioSslShutdownHang, FiftyPeersPileUpInCloseWait) {
  Server server;
  auto leaks = closecheck::Leaks(stuck(server, TcpState::close_wait, 50), [&] {
    for (int i = 0; i < 50; ++i) peer_closes_without_close_notify(server);
  });
  EXPECT_TRUE(leaks);
  // A fixed session's deadline closes its socket; the session is freed only
  // once its read and shutdown have run their handlers, a moment later.
  EXPECT_TRUE(closecheck::eventually([&] { return server.sessions() == (broken ? 50u : 0u); }))
      << "sessions: " << server.sessions();
  auto stats = server.stats();
  EXPECT_EQ(stats.shutdowns_started, 50u);
  if (broken) {
    // Each FIN went to the pending read; no shutdown saw it and ended.
    std::string how;
    for (const auto& ec : stats.shutdowns_done) how += " " + ec.message() + ";";
    how += " the reads ended:";
    for (const auto& ec : stats.reads_ended) how += " " + ec.message() + ";";
    EXPECT_TRUE(stats.shutdowns_done.empty()) << "shutdowns that ended:" << how;
  }
}

// Both variants: what the broken server holds, it gives back when it stops.
TEST(AsioSslShutdownHang, StoppingTheServerReleasesEverything) {
  EXPECT_TRUE(closecheck::NoLeaks([] {
    Server server;
    for (int i = 0; i < 3; ++i) peer_closes_without_close_notify(server);
    Peer silent(server);
    server.disconnect_all();
    ASSERT_TRUE(silent.close_notify_arrived());
  }));
}

// --- Bad input: an error and a clean close, never a hang or a leak -------

// Plain text where the ClientHello should be: the handshake fails and the
// server closes.
TEST(AsioSslShutdownHang, PlainTextInsteadOfTls) {
  Server server;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto client = fixtures::connect_tcp("127.0.0.1", server.port());
    fixtures::send_all(client.get(), "GET / HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(server.wait_for([](const Stats& s) { return s.handshake_failures == 1; }));
    EXPECT_TRUE(fixtures::wait_readable(client.get(), std::chrono::seconds(10)));  // the server's close
  }));
  EXPECT_EQ(server.stats().handshakes, 0u);
}

// A client that connects and goes away before its handshake.
TEST(AsioSslShutdownHang, ClientGoesAwayBeforeTheHandshake) {
  Server server;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    fixtures::connect_tcp("127.0.0.1", server.port());  // closed at once
    ASSERT_TRUE(server.wait_for([](const Stats& s) { return s.handshake_failures == 1; }));
  }));
}

// A line longer than the server takes: the read fails and the session closes.
TEST(AsioSslShutdownHang, OverlongLine) {
  Server server;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    fixtures::tls::ignore_sigpipe();
    auto ctx = fixtures::tls::client_context(CLOSECHECK_TEST_CA);
    fixtures::tls::Channel client(fixtures::connect_tcp("127.0.0.1", server.port()), std::chrono::seconds(10));
    client.start_tls(ctx.get());
    client.write_all(std::string(4096, 'x'));
    ASSERT_TRUE(server.wait_for([](const Stats& s) { return s.reads_ended.size() == 1; }));
    EXPECT_EQ(server.stats().reads_ended[0], boost::asio::error::not_found);
    EXPECT_TRUE(fixtures::wait_readable(client.fd(), std::chrono::seconds(10)));
  }));
}
