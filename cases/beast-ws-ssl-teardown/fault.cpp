// beast-ws-ssl-teardown under injected faults (label fault): the client talks
// to the Beast server through fixtures::fault::Proxy, which cuts the TLS
// handshake, cuts the close frame's record in the middle, drops the client's
// close frame, puts an RST where the close_notify or the server's FIN should
// be, trickles every record, or holds the server's close frame behind a zero
// window; a server also answers the close with garbage instead of a record.
// The bug is in Beast's teardown after a close handshake that succeeds, so
// what matters is whether the close still gets there. Fixed (PR #2025's
// teardown: the overlay on Boost 1.74, or Boost 1.81): nothing left open.
// Broken (Boost 1.74): where close() (or read()'s `closed`) succeeds, the
// client's socket is asserted (count, TCP state, peer = the proxy) and kept
// (the client owns it); a fault that makes the close fail is clean in every
// variant: the client closes what Beast leaves.
// The fault matrix (fixtures/fault/matrix.hpp) runs the faults: each row is
// a custom client through its own toxics (the faults are TLS and WebSocket
// records); HandshakeCut, six proxies in one test, stays a TEST.
#include <gtest/gtest.h>

#include <functional>
#include <future>

#include "closecheck/eventually.hpp"
#include "closecheck/gtest.hpp"
#include "closecheck/sweep.hpp"
#include "fixtures/fault/matrix.hpp"
#include "scenario.hpp"

using namespace beast_ws_ssl_teardown;
using namespace fixtures::fault;
using namespace std::chrono_literals;
using closecheck::TcpState;

namespace {

// TLS 1.3 records of one WebSocket close frame: the client's (masked, code
// 1000: 8 bytes) and the server's (4 bytes), each with 22 bytes of record
// header, content type and tag; close_notify is 24.
constexpr std::size_t client_close_record = 30, server_close_record = 26;

// The server and a client that keeps its connection object (and so, broken,
// its socket) past the check.
struct Host {
  explicit Host(Server::Behaviour behaviour = Server::Behaviour::echo, milliseconds close_timeout = 10s)
      : server(behaviour), client(close_timeout) {}
  Server server;
  Client client;
  error_code ec;  // what the row's close() or read() returned
  std::string proxy;  // the proxy's address: the client's socket's peer
};

// Only the client's sockets (towards the proxy, or towards no one after an
// RST): not the server's. (The proxy's are closed by the check.)
closecheck::Options client_side(const std::string& server, const std::string& proxy = {}) {
  return {.ignore = {[p = proxy, s = server](const closecheck::Fd& fd) {
    return fd.socket && ((!p.empty() && fd.socket->local == p) || fd.socket->local == s || fd.socket->peer == s);
  }}};
}

const Scenario<Host> scenario{
    .suite = "BeastWsSslTeardownFault",
    .port = [](const Host& h) { return static_cast<std::uint16_t>(h.server.port()); },
    .options = [](const Host& h) { return client_side(h.server.address()); },
};

// Broken: the client's one socket, in `state`, still open (its peer the
// proxy: peer_is_the_proxy); fixed: nothing.
LeaksOf<Host> kept(TcpState state) {
  return [state](const Host&) -> std::vector<closecheck::Expected> {
    if (!broken) return {};
    return {{1, closecheck::tcp(state).local("127.0.0.1:*").peer(state == TcpState::close ? "" : "127.0.0.1:*")}};
  };
}
void peer_is_the_proxy(const Host& h, const Seen& seen) {
  if (broken && seen.leaked.size() == 1) EXPECT_EQ(seen.leaked[0].socket->peer, h.proxy);
}

// In the block: the proxy has passed the server's FIN on (as an RST with
// on_eof: reset) and ended, so the client's socket is in its last state.
const auto server_fin_passed = [](Host&, Proxy& proxy, Seen&) {
  EXPECT_TRUE(proxy.wait([](const Stats& s) {
    for (const auto& e : s.events)
      if (e.what == What::eof && e.direction == Direction::downstream) return true;
    return false;
  })) << "the server's FIN";
};

// close() under a fault set once the client is connected (none: no fault),
// when the fault makes it fail: nothing is left open, in every build (the
// client closes what Beast leaves); close() returns an error.
Row<Host> failing_close(const char* name, std::function<Faults(Proxy&)> fault,
                        std::function<void(Host&, Seen&)> then = {}, std::function<std::unique_ptr<Host>()> make = {}) {
  return {.name = name, .fault = Fault::custom,
          .expect = {.then = [then](Host& h, Seen& seen) {
                       EXPECT_TRUE(h.ec) << "an error, not success";
                       EXPECT_FALSE(h.client.tcp_open());
                       if (then) then(h, seen);
                     }},
          .toxics = Faults{},
          .make = make,
          .client = [fault](Host& h, Proxy& proxy, Seen&) {
            ASSERT_FALSE(h.client.connect(proxy.port()));
            if (fault) proxy.set(fault(proxy));
            h.ec = h.client.close();
          }};
}
std::function<std::unique_ptr<Host>()> close_timeout(milliseconds timeout,
                                                      Server::Behaviour behaviour = Server::Behaviour::echo) {
  return [=] { return std::make_unique<Host>(behaviour, timeout); };
}

// A socket of this process whose peer is `peer` holds unread bytes.
bool unread_from(const std::string& peer) {
  for (const auto& s : closecheck::sweep(closecheck::state_bit(TcpState::established)))
    if (s.peer == peer && s.recv_q > 0) return true;
  return false;
}

const bool registered = register_matrix(scenario, {
    // Every record trickled (the client's bytes 7 at a time, the server's 5 at a
    // time 10 ms late): the close handshake and the TLS shutdown succeed as
    // without the trickle. Broken: CLOSE_WAIT towards the proxy, which passed the
    // server's FIN on.
    {.name = "TrickledRecords", .fault = Fault::custom,
     .expect = {.leaks = kept(TcpState::close_wait), .settle = server_fin_passed,
                .then = [](Host& h, Seen& seen) {
                  peer_is_the_proxy(h, seen);
                  EXPECT_EQ(h.client.tcp_open(), broken);
                  EXPECT_TRUE(closecheck::eventually([&] { return h.server.closed_sessions() == 1; }));
                }},
     .toxics = Faults{.upstream = {.slice_bytes = 7, .slice_delay = 1ms},
                      .downstream = {.latency = 10ms, .slice_bytes = 5, .slice_delay = 1ms}},
     .client = [](Host& h, Proxy& proxy, Seen&) {
       h.proxy = proxy.address();
       echo_then_close(h.client, proxy.port());
     }},
    // The server's FIN, which follows its TLS shutdown, reaches the client as an
    // RST (on_eof: reset). Broken: close() has already succeeded on the
    // close_notify; the RST moves the socket it left open to CLOSE (the peer
    // forgotten). Fixed: the teardown's drain meets the RST; Beast returns the
    // error without closing, and the client closes.
    {.name = "ServersFinArrivesAsAnRst", .fault = Fault::custom,
     .expect = {.leaks = kept(TcpState::close),
                .settle = [](Host& h, Proxy& proxy, Seen& seen) {
                  server_fin_passed(h, proxy, seen);
                  EXPECT_TRUE(proxy.wait_idle()) << "the RST sent";
                },
                .then = [](Host& h, Seen&) {
                  EXPECT_EQ(h.ec, broken ? error_code{} : error_code{asio::error::connection_reset}) << h.ec.message();
                  EXPECT_EQ(h.client.tcp_open(), broken);
                }},
     .toxics = Faults{.downstream = {.on_eof = Cut::reset}},
     .client = [](Host& h, Proxy& proxy, Seen&) {
       ASSERT_FALSE(h.client.connect(proxy.port()));
       h.ec = h.client.close();
     }},
    // An RST where the server's close_notify should be: the client gets the
    // server's close frame, then the reset. The TLS shutdown fails in every
    // variant; close() reports it and the client closes. This fault does not
    // trigger the bug: it needs a teardown that succeeds.
    failing_close("ResetInPlaceOfTheCloseNotify", [](Proxy& proxy) -> Faults {
      return {.downstream = {.limit_data = proxy.stats().bytes_downstream + server_close_record, .limit_cut = Cut::reset}};
    }),
    // The server's close frame (the client said "bye") cut in the middle of its
    // record, then a FIN both ways: read() fails on the truncated record, the
    // client closes. Clean in every variant.
    {.name = "ServersCloseFrameCutInTheMiddle", .fault = Fault::custom,
     .expect = {.then = [](Host& h, Seen&) {
       EXPECT_TRUE(h.ec);
       EXPECT_NE(h.ec, websocket::error::closed) << "no close handshake: " << h.ec.message();
       EXPECT_FALSE(h.client.tcp_open());
     }},
     .client = [](Host& h, Proxy& proxy, Seen&) {
       ASSERT_FALSE(h.client.connect(proxy.port()));
       proxy.set({.downstream = {.limit_data = proxy.stats().bytes_downstream + server_close_record / 2,
                                 .limit_cut = Cut::close}});
       ASSERT_FALSE(h.client.write("bye"));
       std::string text;
       h.ec = h.client.read(text);
     }},
    // The client's close frame cut in the middle of its record: the server reads
    // half a record and a FIN. The client's close() fails (stream_truncated)
    // only once Beast's close timeout (1 s here) has passed. Clean in every variant.
    failing_close("ClientsCloseFrameCutInTheMiddle", [](Proxy& proxy) -> Faults {
      return {.upstream = {.limit_data = proxy.stats().bytes_upstream + client_close_record / 2, .limit_cut = Cut::close}};
    }, {}, close_timeout(1s)),
    // Garbage where the server's close frame should be: bytes that are not a TLS
    // record. close() fails with an SSL error, here too only once Beast's close
    // timeout (1 s) has passed; the client closes. Clean in every variant.
    failing_close("GarbageInsteadOfTheCloseFrame", nullptr, [](Host& h, Seen&) {
      EXPECT_EQ(h.ec.category(), asio::error::get_ssl_category()) << h.ec.message();
    }, close_timeout(1s, Server::Behaviour::garbage)),
    // A server that never answers the close, because the network drops the close
    // frame (timeout 0: nothing gets through, never closed): Beast's close
    // timeout fires and Beast closes the socket. Clean in every variant.
    failing_close("CloseFrameNeverArrives", [](Proxy&) { return Faults{.upstream = {.timeout = 0ms}}; },
                  [](Host& h, Seen& seen) {
      EXPECT_EQ(h.ec, beast::error::timeout);
      EXPECT_GT(seen.proxy.dropped, 0u) << "the close frame";
      EXPECT_EQ(h.server.closed_sessions(), 0);
    }, close_timeout(500ms)),
    // The server closes first ("bye") while the client's side stops reading (a
    // zero window: the proxy stalls, small buffers): the server's close frame
    // waits, unread, in the proxy's socket. When reading resumes, the client's
    // read() answers it and tears down. Broken: CLOSE_WAIT.
    {.name = "ServersCloseFrameBehindAZeroWindow", .fault = Fault::custom,
     .expect = {.leaks = kept(TcpState::close_wait), .settle = server_fin_passed,
                .then = [](Host& h, Seen& seen) {
                  peer_is_the_proxy(h, seen);
                  EXPECT_EQ(h.ec, websocket::error::closed);
                  EXPECT_EQ(h.client.tcp_open(), broken);
                }},
     .proxy = Proxy::Options{.rcvbuf = 4096, .sndbuf = 4096},
     .client = [](Host& h, Proxy& proxy, Seen&) {
       h.proxy = proxy.address();
       ASSERT_FALSE(h.client.connect(proxy.port()));
       proxy.set({.downstream = {.stall = true}});
       ASSERT_FALSE(h.client.write("bye"));
       auto read = std::async(std::launch::async, [&] {
         std::string text;
         return h.client.read(text);
       });
       ASSERT_TRUE(closecheck::eventually([&] { return unread_from(h.server.address()); })) << "the close frame, held";
       EXPECT_EQ(read.wait_for(0ms), std::future_status::timeout);
       proxy.set({});
       h.ec = read.get();
     }},
});

}  // namespace

// The handshake cut by a FIN, an RST or a half-close, in the ClientHello
// (after 100 bytes) or in the server's first flight (after 50): connect()
// fails, nothing is open. No close handshake, no teardown: clean in every variant.
TEST(BeastWsSslTeardownFault, HandshakeCut) {
  Server server;
  for (auto direction : {Direction::upstream, Direction::downstream}) {
    for (auto cut : {Cut::close, Cut::reset, Cut::half_close}) {
      Faults faults;
      faults[direction] = {.limit_data = direction == Direction::upstream ? 100u : 50u, .limit_cut = cut};
      Proxy proxy(server.port(), faults);
      Client client;
      error_code ec;
      EXPECT_TRUE(closecheck::NoLeaks([&] { ec = client.connect(proxy.port()); },
                                      client_side(server.address(), proxy.address())));
      EXPECT_TRUE(ec) << to_string(direction) << " " << to_string(cut);
      EXPECT_FALSE(client.tcp_open());
      EXPECT_TRUE(proxy.wait_fired(What::limit_data));
    }
  }
}
