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
// The tests are rows of the fault matrix (fixtures/fault/matrix.hpp); the
// peer is this case's TLS client, so each row plays it (Fault::custom).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <optional>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/matrix.hpp"
#include "scenario.hpp"

using namespace asio_ssl_shutdown_hang;
using fixtures::fault::Cut;
using fixtures::fault::ending;
using fixtures::fault::Fault;
using fixtures::fault::Faults;
using fixtures::fault::LeaksOf;
using fixtures::fault::Proxy;
using fixtures::fault::Seen;
using fixtures::fault::What;
using namespace std::chrono_literals;
namespace ssl_error = boost::asio::ssl::error;

namespace {

constexpr auto past_the_deadline = 750ms;  // three default deadlines
constexpr auto hang = 300ms;               // how long a broken server's missing close is waited for
// For the faults whose effect reaches the server long before this deadline.
const Server::Options slow_deadline{.shutdown_timeout = 2s};

// The server, the proxy in front of it (both live to the end of the test:
// the proxy's end would change what the server's socket shows), and the peer
// a row keeps past the check.
struct Proxied {
  explicit Proxied(Server::Options options = {}, Proxy::Options proxy_options = {})
      : server(options), proxy(server.port(), {}, proxy_options) {}
  Server server;
  Proxy proxy;
  std::optional<Peer> peer;
};
auto slow() { return [] { return std::make_unique<Proxied>(slow_deadline); }; }

// Only the server's sockets: not the peer's, not the proxy's.
const fixtures::fault::Scenario<Proxied> scenario{
    .suite = "AsioSslShutdownHangFault",
    .options = [](const Proxied& f) {
      return closecheck::Options{.ignore = {[address = f.server.address()](const closecheck::Fd& fd) {
        return fd.socket && fd.socket->local != address;
      }}};
    },
    .proxy = [](Proxied& f) -> Proxy& { return f.proxy; },
};
// Broken: the socket the stuck shutdown holds, in `state`; fixed: nothing.
LeaksOf<Proxied> stuck_in(TcpState state) {
  return [state](const Proxied& f) { return stuck(f.server, state); };
}

error_code read_ended(const Server& server) {
  if (!server.wait_for([](const Stats& s) { return !s.reads_ended.empty(); })) return {};
  return server.stats().reads_ended[0];
}
// The read ended with `ec`, and the shutdown ends by its deadline (fixed) or never (broken).
auto read_ended_then_shutdown(error_code ec) {
  return [ec](Proxied& f, Seen&) {
    EXPECT_EQ(read_ended(f.server), ec);
    EXPECT_EQ(shutdowns_end(f.server, 1, past_the_deadline), !broken);
  };
}
void shutdown_ends_if_fixed(Proxied& f, Seen&) { EXPECT_EQ(shutdowns_end(f.server, 1, past_the_deadline), !broken); }

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

// The handshake cut by a FIN, an RST or a half-close, `after` bytes into one
// direction: the handshake fails, the server closes. No session, no
// shutdown: clean in both.
auto handshake_cut(fixtures::fault::Direction direction, std::size_t after) {
  return [direction, after](Proxied& f, Proxy& proxy, Seen&) {
    std::size_t cuts = 0;
    for (auto cut : {Cut::close, Cut::reset, Cut::half_close}) {
      Faults faults;
      faults[direction] = {.limit_data = after, .limit_cut = cut};
      proxy.set(faults);
      EXPECT_THROW(Peer{proxy.port()}, fixtures::tls::Error) << to_string(cut);
      ++cuts;
      EXPECT_TRUE(f.server.wait_for([&](const Stats& s) { return s.handshake_failures == cuts; })) << to_string(cut);
      EXPECT_TRUE(proxy.wait_idle()) << to_string(cut);
    }
  };
}
void no_session(Proxied& f, Seen&) {
  EXPECT_EQ(f.server.stats().handshakes, 0u);
  EXPECT_EQ(f.server.stats().shutdowns_started, 0u);
  EXPECT_TRUE(closecheck::eventually([&] { return f.server.sessions() == 0; }));
}

// The canonical peer: it reads the close_notify and closes its TCP without one.
void peer_closes_without_close_notify(Proxied& f, Proxy& proxy, Seen&) {
  asio_ssl_shutdown_hang::peer_closes_without_close_notify(f.server, proxy.port());
}

const bool registered = fixtures::fault::register_matrix(scenario, {
    // In the ClientHello, after 100 bytes.
    {.name = "HandshakeCutInTheClientHello", .fault = Fault::custom, .expect = {.then = no_session},
     .client = handshake_cut(fixtures::fault::Direction::upstream, 100)},
    // In the server's first flight, after 50 bytes.
    {.name = "HandshakeCutInTheServerHello", .fault = Fault::custom, .expect = {.then = no_session},
     .client = handshake_cut(fixtures::fault::Direction::downstream, 50)},
    // The peer reads the close_notify and closes its TCP; the network turns its
    // FIN into an RST (on_eof: reset). The pending read takes the RST, the
    // shutdown waits on. Broken: the socket in CLOSE, peer forgotten, still open.
    {.name = "PeersFinArrivesAsAnRst", .fault = Fault::custom,
     .expect = {.leaks = stuck_in(TcpState::close),
                .then = read_ended_then_shutdown(boost::asio::error::connection_reset)},
     .toxics = Faults{.upstream = {.on_eof = Cut::reset}}, .make = slow(), .client = peer_closes_without_close_notify},
    // The peer stays silent; while the shutdown waits, the network resets the
    // connection (reset_peer). Broken: the same socket in CLOSE, still open.
    {.name = "ResetDuringTheShutdown", .fault = Fault::custom,
     .expect = {.leaks = stuck_in(TcpState::close), .ending = "reset",
                .then = read_ended_then_shutdown(boost::asio::error::connection_reset)},
     .make = slow(), .client = [](Proxied& f, Proxy& proxy, Seen& seen) {
       auto& peer = f.peer.emplace(proxy.port());
       f.server.disconnect_all();
       ASSERT_TRUE(peer.close_notify_arrived());
       close_reaches_a_busy_server(f.server, [&] {
         proxy.set({.upstream = {.reset_peer = 0ms}, .downstream = {.reset_peer = 0ms}});
         ASSERT_TRUE(proxy.wait_fired(What::reset_peer));
       });
       seen.ending = ending(peer.fd());
       if (!broken) ASSERT_TRUE(shutdowns_end(f.server, 1, 10s));
     }},
    // The peer half-closes before the server ends the session: the read takes the
    // FIN (stream_truncated) and the session closes itself, no shutdown started.
    // This fault does not trigger the bug: it needs a shutdown in progress.
    {.name = "PeerHalfClosesBeforeTheCloseNotify", .fault = Fault::custom,
     .expect = {.ending = "eof",
                .then = [](Proxied& f, Seen&) {
                  EXPECT_EQ(f.server.stats().shutdowns_started, 0u);
                  EXPECT_TRUE(closecheck::eventually([&] { return f.server.sessions() == 0; }));
                }},
     .client = [](Proxied& f, Proxy& proxy, Seen& seen) {
       Peer peer(proxy.port());
       ASSERT_EQ(::shutdown(peer.fd(), SHUT_WR), 0);
       EXPECT_EQ(read_ended(f.server), ssl_error::stream_truncated);
       seen.ending = ending(peer.fd());
       f.server.disconnect_all();  // nothing left to end
     }},
    // The peer half-closes after the server's close_notify has reached it, without
    // reading it, and keeps its socket: the read takes the FIN, the shutdown's own
    // read never wakes. Broken: CLOSE_WAIT, and the peer never sees the server's
    // FIN; fixed: the deadline closes, the peer gets the close_notify and a FIN.
    {.name = "PeerHalfClosesAfterTheCloseNotify", .fault = Fault::custom,
     .expect = {.leaks = stuck_in(TcpState::close_wait), .ending = broken ? "open" : "eof",
                .then = [](Proxied& f, Seen& seen) {
                  EXPECT_EQ(seen.got.size(), 24u) << "the close_notify, read as it came";
                  shutdown_ends_if_fixed(f, seen);
                }},
     .make = slow(), .client = [](Proxied& f, Proxy& proxy, Seen& seen) {
       auto& peer = f.peer.emplace(proxy.port());
       f.server.disconnect_all();
       ASSERT_TRUE(peer.close_notify_arrived());
       ASSERT_EQ(::shutdown(peer.fd(), SHUT_WR), 0);
       EXPECT_EQ(read_ended(f.server), ssl_error::stream_truncated);
       seen.ending = ending(peer.fd(), &seen.got, broken ? hang : 10s);
     }},
    // A polite peer whose answer is lost: it reads the close_notify and sends its
    // own, which the network drops (timeout 0: nothing gets through, never
    // closed). Broken: the server waits for it for good, ESTABLISHED.
    {.name = "CloseNotifyAnswerLost", .fault = Fault::custom,
     .expect = {.leaks = stuck_in(TcpState::established), .then = shutdown_ends_if_fixed,
                .after = [](Proxied& f, Proxy& proxy, Seen&) {
                  EXPECT_GT(proxy.stats().dropped, 0u) << "the answer";
                  EXPECT_EQ(ending(f.peer->fd(), nullptr, broken ? hang : 10s), broken ? "open" : "eof");
                }},
     .client = [](Proxied& f, Proxy& proxy, Seen&) {
       auto& peer = f.peer.emplace(proxy.port());
       proxy.set({.upstream = {.timeout = 0ms}});
       f.server.disconnect_all();
       ASSERT_TRUE(peer.close_notify_arrived());
       ASSERT_TRUE(peer.read_close_notify());
       EXPECT_TRUE(peer.answer_close_notify()) << "both close_notify seen: the peer's shutdown is done";
       if (!broken) ASSERT_TRUE(shutdowns_end(f.server, 1, 10s));
     }},
    // The server's replies and then its close_notify queue behind a zero window
    // (the proxy stops reading, small buffers). The shutdown's write completes
    // into the kernel; its wait for the peer does not. Broken: ESTABLISHED with
    // the bytes unsent. Fixed: the deadline closes; the kernel still delivers
    // every reply and the close_notify once the window opens, then the FIN.
    {.name = "CloseNotifyBehindAZeroWindow", .fault = Fault::custom,
     .expect = {.leaks = stuck_in(TcpState::established),
                .then = [](Proxied& f, Seen& seen) {
                  shutdown_ends_if_fixed(f, seen);
                  EXPECT_EQ(f.server.stats().shutdowns_started, 1u);
                },
                .after = [](Proxied& f, Proxy& proxy, Seen& seen) {
                  auto& peer = *f.peer;
                  const std::string line = std::string(1000, 'z') + "\n";
                  proxy.set({});  // the window opens
                  std::string got;
                  for (auto more = peer.channel().read_some(); !more.empty(); more = peer.channel().read_some()) got += more;
                  std::string expected;
                  for (std::size_t i = 0, lines = std::any_cast<std::size_t>(seen.state); i < lines; ++i)
                    expected += "ok: " + line;
                  EXPECT_EQ(got.size(), expected.size());
                  EXPECT_TRUE(got == expected) << "every answer, in order, then the close_notify";
                  // No close_notify back: broken, the FIN puts the stuck socket in CLOSE_WAIT.
                  close_reaches_a_busy_server(f.server, [&] { peer.close_tcp(); });
                  if (broken) {
                    std::string seen_states;
                    EXPECT_TRUE(closecheck::eventually([&] {
                      seen_states.clear();
                      for (const auto& s : closecheck::sweep(~0u))
                        if (s.local == f.server.address()) (seen_states += " ") += closecheck::to_string(s.state);
                      return seen_states.find("CLOSE_WAIT") != std::string::npos;
                    }, {.settle = 10s})) << "the stuck socket never reached CLOSE_WAIT; the server's sockets:" << seen_states;
                  }
                }},
     .make = [] { return std::make_unique<Proxied>(Server::Options{}, Proxy::Options{.rcvbuf = 4096, .sndbuf = 4096}); },
     .client = [](Proxied& f, Proxy& proxy, Seen& seen) {
       auto& peer = f.peer.emplace(proxy.port());
       proxy.set({.downstream = {.stall = true}});
       const std::string line = std::string(1000, 'z') + "\n";
       std::size_t lines = 0;
       seen.state = lines;
       // One line at a time, each answered (written to the kernel), until the
       // answers back up in the server's socket: the session is idle, its read pending.
       while (!held_by_a_zero_window(f.server) && lines < 2000) {
         peer.channel().write_all(line);
         seen.state = ++lines;
         ASSERT_TRUE(f.server.wait_for([&](const Stats& s) { return s.replies == lines + 1; }))
             << "answer " << lines << " not written in 10 s";
       }
       ASSERT_TRUE(held_by_a_zero_window(f.server)) << lines << " answers and the window is still open";
       f.server.disconnect_all();
       if (!broken) ASSERT_TRUE(shutdowns_end(f.server, 1, 10s)) << "no shutdown ended in 10 s";
     }},
    // Records trickled both ways (the client's bytes one at a time, the server's
    // five at a time, 20 ms late), then the canonical peer: it reads the
    // close_notify and closes without one. Broken: CLOSE_WAIT, as without the trickle.
    {.name = "TrickledRecordsPeerClosesWithoutCloseNotify", .fault = Fault::custom,
     .expect = {.leaks = stuck_in(TcpState::close_wait), .then = read_ended_then_shutdown(ssl_error::stream_truncated)},
     .toxics = Faults{.upstream = {.slice_bytes = 1, .slice_delay = 1ms},
                      .downstream = {.latency = 20ms, .slice_bytes = 5, .slice_delay = 1ms}},
     .make = slow(), .client = peer_closes_without_close_notify},
    // Garbage where the peer's close_notify should be: the read fails on the
    // record, and the shutdown, woken, fails too and closes. Clean in both: the
    // bug needs a peer that sends nothing.
    {.name = "GarbageInsteadOfTheCloseNotify", .fault = Fault::custom,
     .expect = {.ending = "eof",
                .then = [](Proxied& f, Seen&) {
                  auto stats = f.server.stats();
                  ASSERT_EQ(stats.reads_ended.size(), 1u);
                  EXPECT_EQ(stats.reads_ended[0].category(), boost::asio::error::get_ssl_category())
                      << stats.reads_ended[0].message();
                  ASSERT_EQ(stats.shutdowns_done.size(), 1u);
                  EXPECT_TRUE(stats.shutdowns_done[0]) << "an error, then the close";
                }},
     .client = [](Proxied& f, Proxy& proxy, Seen& seen) {
       Peer peer(proxy.port());
       f.server.disconnect_all();
       ASSERT_TRUE(peer.close_notify_arrived());
       fixtures::send_all(peer.fd(), "this is not a TLS record\r\n");  // under the TLS layer
       ASSERT_TRUE(shutdowns_end(f.server, 1, 10s));
       seen.ending = ending(peer.fd());
     }},
});

}  // namespace
