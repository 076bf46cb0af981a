// asio-ssl-shutdown-hang under injected faults (label fault): the peer talks
// to the server through fixtures::fault::Proxy, which cuts the handshake,
// turns the peer's FIN into an RST, resets during the shutdown, half-closes,
// drops the peer's close_notify, trickles records or holds the server's
// close_notify behind a zero window; the peer also sends garbage where a
// record should be. The bug is a shutdown that waits for the peer's
// close_notify with no deadline, so what matters is whether a fault can leave
// that wait without an answer. Fixed: nothing left, every wait bounded.
// Broken: the socket the stuck shutdown holds is asserted (count, TCP state,
// local address) and kept (the server closes it when it stops); a fault that
// ends the session before its shutdown, or answers the shutdown, is clean in both.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <optional>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace asio_ssl_shutdown_hang;
using fixtures::fault::Cut;
using fixtures::fault::ending;
using fixtures::fault::FdLimitedServer;
using fixtures::fault::LimitedServer;
using fixtures::fault::Proxy;
using fixtures::fault::What;
using namespace std::chrono_literals;
using closecheck::Reclaim;
namespace ssl_error = boost::asio::ssl::error;

namespace {

constexpr auto past_the_deadline = 750ms;  // three default deadlines
constexpr auto hang = 300ms;               // how long a broken server's missing close is waited for
// For the faults whose effect reaches the server long before this deadline.
const Server::Options slow_deadline{.shutdown_timeout = 2s};

// Only the server's sockets: not the peer's, not the proxy's.
closecheck::Options server_side_only(const Server& server) {
  return {.ignore = {[address = server.address()](const closecheck::Fd& fd) {
    return fd.socket && fd.socket->local != address;
  }}};
}

error_code read_ended(const Server& server) {
  if (!server.wait_for([](const Stats& s) { return !s.reads_ended.empty(); })) return {};
  return server.stats().reads_ended[0];
}

// The server's socket of its one connection has bytes sent and not
// acknowledged (ss's Send-Q) while the proxy has bytes from it unread: the
// window is closed.
bool held_by_a_zero_window(const Server& server) {
  bool sending = false, unread = false;
  for (const auto& s : closecheck::sweep(closecheck::state_bit(TcpState::established))) {
    if (s.local == server.address() && s.send_q > 0) sending = true;
    if (s.peer == server.address() && s.recv_q > 0) unread = true;
  }
  return sending && unread;
}

}  // namespace

// The handshake cut by a FIN, an RST or a half-close, `after` bytes into one
// direction: the handshake fails, the server closes. No session, no
// shutdown: clean in both.
void handshake_cut(fixtures::fault::Direction direction, std::size_t after) {
  Server server;
  std::size_t cuts = 0;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    for (auto cut : {Cut::close, Cut::reset, Cut::half_close}) {
      fixtures::fault::Faults faults;
      faults[direction] = {.limit_data = after, .limit_cut = cut};
      Proxy proxy(server.port(), faults);
      EXPECT_THROW(Peer{proxy.port()}, fixtures::tls::Error) << to_string(cut);
      ++cuts;
      EXPECT_TRUE(server.wait_for([&](const Stats& s) { return s.handshake_failures == cuts; })) << to_string(cut);
      EXPECT_TRUE(proxy.wait_idle()) << to_string(cut);
    }
  }, server_side_only(server)));
  EXPECT_EQ(server.stats().handshakes, 0u);
  EXPECT_EQ(server.stats().shutdowns_started, 0u);
  EXPECT_TRUE(closecheck::eventually([&] { return server.sessions() == 0; }));
}

// In the ClientHello, after 100 bytes.
TEST(AsioSslShutdownHangFault, HandshakeCutInTheClientHello) { handshake_cut(fixtures::fault::Direction::upstream, 100); }

// In the server's first flight, after 50 bytes.
TEST(AsioSslShutdownHangFault, HandshakeCutInTheServerHello) { handshake_cut(fixtures::fault::Direction::downstream, 50); }

// The peer reads the close_notify and closes its TCP; the network turns its
// FIN into an RST (on_eof: reset). The pending read takes the RST, the
// shutdown waits on. Broken: the socket in CLOSE, peer forgotten, still open.
TEST(AsioSslShutdownHangFault, PeersFinArrivesAsAnRst) {
  Server server(slow_deadline);
  Proxy proxy(server.port(), {.upstream = {.on_eof = Cut::reset}});
  auto verdict = closecheck::expect_leaks(stuck(server, TcpState::close), [&] {
    peer_closes_without_close_notify(server, proxy.port());
  }, Reclaim::keep, server_side_only(server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(read_ended(server), boost::asio::error::connection_reset);
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
}

// The peer stays silent; while the shutdown waits, the network resets the
// connection (reset_peer). Broken: the same socket in CLOSE, still open.
TEST(AsioSslShutdownHangFault, ResetDuringTheShutdown) {
  Server server(slow_deadline);
  Proxy proxy(server.port());
  std::optional<Peer> peer;
  auto verdict = closecheck::expect_leaks(stuck(server, TcpState::close), [&] {
    peer.emplace(proxy.port());
    server.disconnect_all();
    ASSERT_TRUE(peer->close_notify_arrived());
    close_reaches_a_busy_server(server, [&] {
      proxy.set({.upstream = {.reset_peer = 0ms}, .downstream = {.reset_peer = 0ms}});
      ASSERT_TRUE(proxy.wait_fired(What::reset_peer));
    });
    EXPECT_EQ(ending(peer->fd()), "reset");
    if (!broken) ASSERT_TRUE(shutdowns_end(server, 1, 10s));
  }, Reclaim::keep, server_side_only(server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(read_ended(server), boost::asio::error::connection_reset);
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
}

// The peer half-closes before the server ends the session: the read takes the
// FIN (stream_truncated) and the session closes itself, no shutdown started.
// This fault does not trigger the bug: it needs a shutdown in progress.
TEST(AsioSslShutdownHangFault, PeerHalfClosesBeforeTheCloseNotify) {
  Server server;
  Proxy proxy(server.port());
  std::string end;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    Peer peer(proxy.port());
    ASSERT_EQ(::shutdown(peer.fd(), SHUT_WR), 0);
    EXPECT_EQ(read_ended(server), ssl_error::stream_truncated);
    end = ending(peer.fd());
    server.disconnect_all();  // nothing left to end
  }, server_side_only(server)));
  EXPECT_EQ(end, "eof");
  EXPECT_EQ(server.stats().shutdowns_started, 0u);
  EXPECT_TRUE(closecheck::eventually([&] { return server.sessions() == 0; }));
}

// The peer half-closes after the server's close_notify has reached it, without
// reading it, and keeps its socket: the read takes the FIN, the shutdown's own
// read never wakes. Broken: CLOSE_WAIT, and the peer never sees the server's
// FIN; fixed: the deadline closes, the peer gets the close_notify and a FIN.
TEST(AsioSslShutdownHangFault, PeerHalfClosesAfterTheCloseNotify) {
  Server server(slow_deadline);
  Proxy proxy(server.port());
  std::optional<Peer> peer;
  std::string got, end;
  auto verdict = closecheck::expect_leaks(stuck(server, TcpState::close_wait), [&] {
    peer.emplace(proxy.port());
    server.disconnect_all();
    ASSERT_TRUE(peer->close_notify_arrived());
    ASSERT_EQ(::shutdown(peer->fd(), SHUT_WR), 0);
    EXPECT_EQ(read_ended(server), ssl_error::stream_truncated);
    end = ending(peer->fd(), &got, broken ? hang : 10s);
  }, Reclaim::keep, server_side_only(server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(got.size(), 24u) << "the close_notify, read as it came";
  EXPECT_EQ(end, broken ? "open" : "eof");
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
}

// A polite peer whose answer is lost: it reads the close_notify and sends its
// own, which the network drops (timeout 0: nothing gets through, never
// closed). Broken: the server waits for it for good, ESTABLISHED.
TEST(AsioSslShutdownHangFault, CloseNotifyAnswerLost) {
  Server server;
  Proxy proxy(server.port());
  std::optional<Peer> peer;
  auto verdict = closecheck::expect_leaks(stuck(server, TcpState::established), [&] {
    peer.emplace(proxy.port());
    proxy.set({.upstream = {.timeout = 0ms}});
    server.disconnect_all();
    ASSERT_TRUE(peer->close_notify_arrived());
    ASSERT_TRUE(peer->read_close_notify());
    EXPECT_TRUE(peer->answer_close_notify()) << "both close_notify seen: the peer's shutdown is done";
    if (!broken) ASSERT_TRUE(shutdowns_end(server, 1, 10s));
  }, Reclaim::keep, server_side_only(server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
  EXPECT_GT(proxy.stats().dropped, 0u) << "the answer";
  EXPECT_EQ(ending(peer->fd(), nullptr, broken ? hang : 10s), broken ? "open" : "eof");
}

// The server's replies and then its close_notify queue behind a zero window
// (the proxy stops reading, small buffers). The shutdown's write completes
// into the kernel; its wait for the peer does not. Broken: ESTABLISHED with
// the bytes unsent. Fixed: the deadline closes; the kernel still delivers
// every reply and the close_notify once the window opens, then the FIN.
TEST(AsioSslShutdownHangFault, CloseNotifyBehindAZeroWindow) {
  Server server;
  Proxy proxy(server.port(), {}, {.rcvbuf = 4096, .sndbuf = 4096});
  std::optional<Peer> peer;
  const std::string line = std::string(1000, 'z') + "\n";
  std::size_t lines = 0;
  auto verdict = closecheck::expect_leaks(stuck(server, TcpState::established), [&] {
    peer.emplace(proxy.port());
    proxy.set({.downstream = {.stall = true}});
    // One line at a time, each answered (written to the kernel), until the
    // answers back up in the server's socket: the session is idle, its read pending.
    while (!held_by_a_zero_window(server) && lines < 2000) {
      peer->channel().write_all(line);
      ++lines;
      ASSERT_TRUE(server.wait_for([&](const Stats& s) { return s.replies == lines + 1; }))
          << "answer " << lines << " not written in 10 s";
    }
    ASSERT_TRUE(held_by_a_zero_window(server)) << lines << " answers and the window is still open";
    server.disconnect_all();
    if (!broken) ASSERT_TRUE(shutdowns_end(server, 1, 10s)) << "no shutdown ended in 10 s";
  }, Reclaim::keep, server_side_only(server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
  EXPECT_EQ(server.stats().shutdowns_started, 1u);

  proxy.set({});  // the window opens
  std::string got;
  for (auto more = peer->channel().read_some(); !more.empty(); more = peer->channel().read_some()) got += more;
  std::string expected;
  for (std::size_t i = 0; i < lines; ++i) expected += "ok: " + line;
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "every answer, in order, then the close_notify";
  // No close_notify back: broken, the FIN puts the stuck socket in CLOSE_WAIT.
  close_reaches_a_busy_server(server, [&] { peer->close_tcp(); });
  if (broken) {
    std::string seen;
    EXPECT_TRUE(closecheck::eventually([&] {
      seen.clear();
      for (const auto& s : closecheck::sweep(~0u))
        if (s.local == server.address()) (seen += " ") += closecheck::to_string(s.state);
      return seen.find("CLOSE_WAIT") != std::string::npos;
    }, {.settle = 10s})) << "the stuck socket never reached CLOSE_WAIT; the server's sockets:" << seen;
  }
}

// Records trickled both ways (the client's bytes one at a time, the server's
// five at a time, 20 ms late), then the canonical peer: it reads the
// close_notify and closes without one. Broken: CLOSE_WAIT, as without the trickle.
TEST(AsioSslShutdownHangFault, TrickledRecordsPeerClosesWithoutCloseNotify) {
  Server server(slow_deadline);
  Proxy proxy(server.port(), {.upstream = {.slice_bytes = 1, .slice_delay = 1ms},
                              .downstream = {.latency = 20ms, .slice_bytes = 5, .slice_delay = 1ms}});
  auto verdict = closecheck::expect_leaks(stuck(server, TcpState::close_wait), [&] {
    peer_closes_without_close_notify(server, proxy.port());
  }, Reclaim::keep, server_side_only(server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(read_ended(server), ssl_error::stream_truncated);
  EXPECT_EQ(shutdowns_end(server, 1, past_the_deadline), !broken);
}

// Garbage where the peer's close_notify should be: the read fails on the
// record, and the shutdown, woken, fails too and closes. Clean in both: the
// bug needs a peer that sends nothing.
TEST(AsioSslShutdownHangFault, GarbageInsteadOfTheCloseNotify) {
  Server server;
  Proxy proxy(server.port());
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    Peer peer(proxy.port());
    server.disconnect_all();
    ASSERT_TRUE(peer.close_notify_arrived());
    fixtures::send_all(peer.fd(), "this is not a TLS record\r\n");  // under the TLS layer
    ASSERT_TRUE(shutdowns_end(server, 1, 10s));
    EXPECT_EQ(ending(peer.fd()), "eof");
  }, server_side_only(server)));
  auto stats = server.stats();
  ASSERT_EQ(stats.reads_ended.size(), 1u);
  EXPECT_EQ(stats.reads_ended[0].category(), boost::asio::error::get_ssl_category()) << stats.reads_ended[0].message();
  ASSERT_EQ(stats.shutdowns_done.size(), 1u);
  EXPECT_TRUE(stats.shutdowns_done[0]) << "an error, then the close";
}
