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
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <list>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace beast_ws_ssl_teardown;
using namespace std::chrono_literals;
using closecheck::Reclaim;
using closecheck::TcpState;
using fixtures::fault::Cut;
using fixtures::fault::FdLimitedServer;
using fixtures::fault::LimitedServer;
using fixtures::fault::Proxy;
using fixtures::fault::What;

namespace {

// TLS 1.3 records of one WebSocket close frame: the client's (masked, code
// 1000: 8 bytes) and the server's (4 bytes), each with 22 bytes of record
// header, content type and tag; close_notify is 24.
constexpr std::size_t client_close_record = 30, server_close_record = 26;

// Only the client's sockets (towards the proxy, or towards no one after an
// RST): not the proxy's, not the server's.
closecheck::Options client_side(const Proxy& proxy, const Server& server) {
  return {.ignore = {[p = proxy.address(), s = server.address()](const closecheck::Fd& fd) {
    return fd.socket && (fd.socket->local == p || fd.socket->local == s || fd.socket->peer == s);
  }}};
}

// Broken: the client's one socket, in `state`, still open; fixed: nothing.
std::vector<closecheck::Expected> kept(const Proxy& proxy, TcpState state) {
  if (!broken) return {};
  return {{1, closecheck::tcp(state).local("127.0.0.1:*").peer(state == TcpState::close ? "" : proxy.address())}};
}

// close() under `fault` (set once the client is connected, if any), when the
// fault makes it fail: nothing is left open, in every build (the client
// closes what Beast leaves). Returns close()'s error.
error_code failing_close(const Server& server, Proxy& proxy, Client& client,
                         const std::function<fixtures::fault::Faults()>& fault) {
  error_code ec;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    ASSERT_FALSE(client.connect(proxy.port()));
    if (fault) proxy.set(fault());
    ec = client.close();
  }, client_side(proxy, server)));
  EXPECT_TRUE(ec) << "an error, not success";
  EXPECT_FALSE(client.tcp_open());
  return ec;
}

// A socket of this process whose peer is `peer` holds unread bytes.
bool unread_from(const std::string& peer) {
  for (const auto& s : closecheck::sweep(closecheck::state_bit(TcpState::established)))
    if (s.peer == peer && s.recv_q > 0) return true;
  return false;
}

}  // namespace

// The handshake cut by a FIN, an RST or a half-close, in the ClientHello
// (after 100 bytes) or in the server's first flight (after 50): connect()
// fails, nothing is open. No close handshake, no teardown: clean in every variant.
TEST(BeastWsSslTeardownFault, HandshakeCut) {
  Server server;
  for (auto direction : {fixtures::fault::Direction::upstream, fixtures::fault::Direction::downstream}) {
    for (auto cut : {Cut::close, Cut::reset, Cut::half_close}) {
      fixtures::fault::Faults faults;
      faults[direction] = {.limit_data = direction == fixtures::fault::Direction::upstream ? 100u : 50u,
                           .limit_cut = cut};
      Proxy proxy(server.port(), faults);
      Client client;
      error_code ec;
      EXPECT_TRUE(closecheck::NoLeaks([&] { ec = client.connect(proxy.port()); }, client_side(proxy, server)));
      EXPECT_TRUE(ec) << to_string(direction) << " " << to_string(cut);
      EXPECT_FALSE(client.tcp_open());
      EXPECT_TRUE(proxy.wait_fired(What::limit_data));
    }
  }
}

// Every record trickled (the client's bytes 7 at a time, the server's 5 at a
// time 10 ms late): the close handshake and the TLS shutdown succeed as
// without the trickle. Broken: CLOSE_WAIT towards the proxy, which passed the
// server's FIN on.
TEST(BeastWsSslTeardownFault, TrickledRecords) {
  Server server;
  Proxy proxy(server.port(), {.upstream = {.slice_bytes = 7, .slice_delay = 1ms},
                              .downstream = {.latency = 10ms, .slice_bytes = 5, .slice_delay = 1ms}});
  Client client;
  auto verdict = closecheck::expect_leaks(kept(proxy, TcpState::close_wait),
                                          [&] { echo_then_close(client, proxy.port()); }, Reclaim::keep,
                                          client_side(proxy, server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(client.tcp_open(), broken);
  EXPECT_TRUE(closecheck::eventually([&] { return server.closed_sessions() == 1; }));
}

// The server's FIN, which follows its TLS shutdown, reaches the client as an
// RST (on_eof: reset). Broken: close() has already succeeded on the
// close_notify; the RST moves the socket it left open to CLOSE (the peer
// forgotten). Fixed: the teardown's drain meets the RST; Beast returns the
// error without closing, and the client closes.
TEST(BeastWsSslTeardownFault, ServersFinArrivesAsAnRst) {
  Server server;
  Proxy proxy(server.port(), {.downstream = {.on_eof = Cut::reset}});
  Client client;
  error_code ec;
  auto verdict = closecheck::expect_leaks(kept(proxy, TcpState::close), [&] {
    ASSERT_FALSE(client.connect(proxy.port()));
    ec = client.close();
  }, Reclaim::keep, client_side(proxy, server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(ec, broken ? error_code{} : error_code{asio::error::connection_reset}) << ec.message();
  EXPECT_EQ(client.tcp_open(), broken);
}

// An RST where the server's close_notify should be: the client gets the
// server's close frame, then the reset. The TLS shutdown fails in every
// variant; close() reports it and the client closes. This fault does not
// trigger the bug: it needs a teardown that succeeds.
TEST(BeastWsSslTeardownFault, ResetInPlaceOfTheCloseNotify) {
  Server server;
  Proxy proxy(server.port());
  Client client;
  failing_close(server, proxy, client, [&]() -> fixtures::fault::Faults {
    return {.downstream = {.limit_data = proxy.stats().bytes_downstream + server_close_record, .limit_cut = Cut::reset}};
  });
}

// The server's close frame (the client said "bye") cut in the middle of its
// record, then a FIN both ways: read() fails on the truncated record, the
// client closes. Clean in every variant.
TEST(BeastWsSslTeardownFault, ServersCloseFrameCutInTheMiddle) {
  Server server;
  Proxy proxy(server.port());
  Client client;
  error_code ec;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    ASSERT_FALSE(client.connect(proxy.port()));
    proxy.set({.downstream = {.limit_data = proxy.stats().bytes_downstream + server_close_record / 2,
                              .limit_cut = Cut::close}});
    ASSERT_FALSE(client.write("bye"));
    std::string text;
    ec = client.read(text);
  }, client_side(proxy, server)));
  EXPECT_TRUE(ec);
  EXPECT_NE(ec, websocket::error::closed) << "no close handshake: " << ec.message();
  EXPECT_FALSE(client.tcp_open());
}

// The client's close frame cut in the middle of its record: the server reads
// half a record and a FIN. The client's close() fails (stream_truncated)
// only once Beast's close timeout (1 s here) has passed. Clean in every variant.
TEST(BeastWsSslTeardownFault, ClientsCloseFrameCutInTheMiddle) {
  Server server;
  Proxy proxy(server.port());
  Client client(1s);
  failing_close(server, proxy, client, [&]() -> fixtures::fault::Faults {
    return {.upstream = {.limit_data = proxy.stats().bytes_upstream + client_close_record / 2, .limit_cut = Cut::close}};
  });
}

// Garbage where the server's close frame should be: bytes that are not a TLS
// record. close() fails with an SSL error, here too only once Beast's close
// timeout (1 s) has passed; the client closes. Clean in every variant.
TEST(BeastWsSslTeardownFault, GarbageInsteadOfTheCloseFrame) {
  Server server(Server::Behaviour::garbage);
  Proxy proxy(server.port());
  Client client(1s);
  auto ec = failing_close(server, proxy, client, nullptr);
  EXPECT_EQ(ec.category(), asio::error::get_ssl_category()) << ec.message();
}

// A server that never answers the close, because the network drops the close
// frame (timeout 0: nothing gets through, never closed): Beast's close
// timeout fires and Beast closes the socket. Clean in every variant.
TEST(BeastWsSslTeardownFault, CloseFrameNeverArrives) {
  Server server;
  Proxy proxy(server.port());
  Client client(500ms);
  auto ec = failing_close(server, proxy, client, [] { return fixtures::fault::Faults{.upstream = {.timeout = 0ms}}; });
  EXPECT_EQ(ec, beast::error::timeout);
  EXPECT_GT(proxy.stats().dropped, 0u) << "the close frame";
  EXPECT_EQ(server.closed_sessions(), 0);
}

// The server closes first ("bye") while the client's side stops reading (a
// zero window: the proxy stalls, small buffers): the server's close frame
// waits, unread, in the proxy's socket. When reading resumes, the client's
// read() answers it and tears down. Broken: CLOSE_WAIT.
TEST(BeastWsSslTeardownFault, ServersCloseFrameBehindAZeroWindow) {
  Server server;
  Proxy proxy(server.port(), {}, {.rcvbuf = 4096, .sndbuf = 4096});
  Client client;
  error_code ec;
  auto verdict = closecheck::expect_leaks(kept(proxy, TcpState::close_wait), [&] {
    ASSERT_FALSE(client.connect(proxy.port()));
    proxy.set({.downstream = {.stall = true}});
    ASSERT_FALSE(client.write("bye"));
    auto read = std::async(std::launch::async, [&] {
      std::string text;
      return client.read(text);
    });
    ASSERT_TRUE(closecheck::eventually([&] { return unread_from(server.address()); })) << "the close frame, held";
    EXPECT_EQ(read.wait_for(0ms), std::future_status::timeout);
    proxy.set({});
    ec = read.get();
  }, Reclaim::keep, client_side(proxy, server));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(ec, websocket::error::closed);
  EXPECT_EQ(client.tcp_open(), broken);
}
