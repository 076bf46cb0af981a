// websocket-eof-check under injected faults (label fault): the client talks
// to the lws echo server through fixtures::fault::Proxy, which drops, cuts,
// resets, stalls or trickles the bytes. Fixed: every fault ends with nothing
// left open, in bounded time. Broken: a response dropped while its connection
// is still alive leaks the socket (asserted, kept: the WebSocket, dying at
// the end of the test, closes it); a fault that ends the connection first is
// clean in both variants.
#include <gtest/gtest.h>

#include <future>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace websocket_eof_check;
using namespace fixtures::fault;
using closecheck::Reclaim;
using fixtures::ws::Server;

namespace {

// The echo server behind a proxy, and a client with short lws timeouts.
struct Proxied {
  explicit Proxied(Proxy::Options proxy_options = {}) : proxy(server.port(), {}, proxy_options) {}
  Server server;
  Proxy proxy;
  Client client{{.timeout_secs = 1}};

  // The client's sockets only: not the server's, not the proxy's.
  closecheck::Options client_side() const {
    auto options = websocket_eof_check::client_side(server);
    options.ignore.push_back([p = proxy.address(), s = server.address()](const closecheck::Fd& fd) {
      return fd.socket && (fd.socket->local == p || fd.socket->peer == s);
    });
    return options;
  }
  std::unique_ptr<ClientWebSocketResponse> open() { return open_echoing(client, proxy.port()); }
  // Bytes the proxy has passed to the client so far on its one connection.
  std::size_t downstream_so_far() const { return proxy.stats().bytes_downstream; }
};

// close() has its own bound; a watchdog over it fails the test with this
// message if it hangs anyway (ctest's timeout then ends the stuck process).
void close_within(ClientWebSocketResponse& ws) {
  auto done = std::async(std::launch::async, [&] { ws.close(); });
  ASSERT_EQ(done.wait_for(std::chrono::seconds(20)), std::future_status::ready) << "close() hung";
  EXPECT_TRUE(ws.closed());
}

// The bug's trigger under a fault: open_under_fault() opens a WebSocket (in
// the checked block, so its socket is new) and sets the fault; the response is
// then dropped (del ws._response), not closed, while its connection is alive.
// Broken: one socket, ESTABLISHED to the proxy, and the swallowed error;
// fixed: nothing, no log.
template <class OpenUnderFault>
void drop_and_check(Proxied& s, OpenUnderFault open_under_fault) {
  std::string local;
  std::unique_ptr<ClientWebSocketResponse> ws;
  auto verdict = closecheck::expect_leaks(expected_after_release(s.proxy.address()), [&] {
    ws = open_under_fault();
    local = ws->local_address();
    ws->drop_response();
  }, Reclaim::keep, s.client_side());
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(s.client.connector.acquired(), 0u);
  EXPECT_EQ(s.client.connector.pooled(), 0u);
  if (broken) {
    ASSERT_EQ(verdict.leaked.size(), 1u);
    EXPECT_EQ(verdict.leaked[0].socket->local, local);
    EXPECT_EQ(s.client.log.lines(), std::vector{swallowed_error});
  } else {
    EXPECT_TRUE(s.client.log.lines().empty());
  }
}

// A fault that ends the connection: the client reports `error`, closes, and
// nothing is left open (both variants: the close path, not the release path).
void expect_error(Proxied& s, ClientWebSocketResponse& ws, const std::string& error) {
  auto m = ws.receive();
  EXPECT_EQ(m.type, Message::Type::error);
  EXPECT_EQ(m.data, error);
  EXPECT_TRUE(ws.closed()) << "an error ends the connection";
  EXPECT_TRUE(s.proxy.wait_idle());
  EXPECT_TRUE(s.server.wait_for([](const Server::Stats& st) { return st.closed == 1; }));
  EXPECT_TRUE(s.client.log.lines().empty());
}

// The server stops reading (the proxy stalls, small buffers: a zero window)
// and the client queues 1 MB for it.
std::unique_ptr<ClientWebSocketResponse> open_then_stall(Proxied& s) {
  auto ws = s.open();
  s.proxy.set({.upstream = {.stall = true}});
  for (int i = 0; i < 20; ++i) ws->send_str(std::string(50000, 'y'));
  return ws;
}

}  // namespace

// The server hears nothing more (toxiproxy's timeout, never closing); the
// response is dropped.
TEST(WebsocketEofCheckFault, DroppedWhileTheServerHearsNothing) {
  Proxied s;
  drop_and_check(s, [&] {
    auto ws = s.open();
    s.proxy.set({.upstream = {.timeout = std::chrono::milliseconds(0)}});
    return ws;
  });
}

// A server that never answers the close frame (it never gets it): the
// closing handshake is cut by the client's timeout, the socket is closed.
TEST(WebsocketEofCheckFault, CloseFrameNeverAnswered) {
  Proxied s;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto ws = s.open();
    s.proxy.set({.upstream = {.timeout = std::chrono::milliseconds(0)}});
    close_within(*ws);
  }, s.client_side()));
  EXPECT_EQ(s.server.stats().close_frames, 0);
  EXPECT_EQ(s.client.connector.acquired(), 0u);
}

// The echo of a 30000-byte message cut 1000 bytes in, with a FIN. (lws
// delivers no fragment of it, so the client sees a connection without a close frame.)
TEST(WebsocketEofCheckFault, FrameCutInTheMiddle) {
  Proxied s;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto ws = s.open();
    s.proxy.set({.downstream = {.limit_data = s.downstream_so_far() + 1000, .limit_cut = Cut::close}});
    ws->send_str(std::string(30000, 'x'));
    expect_error(s, *ws, "connection closed without a close frame");
  }, s.client_side()));
}

// An RST from the network in the middle of a session.
TEST(WebsocketEofCheckFault, ResetInTheMiddle) {
  Proxied s;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto ws = s.open();
    s.proxy.set({.upstream = {.reset_peer = std::chrono::milliseconds(0)},
                 .downstream = {.reset_peer = std::chrono::milliseconds(0)}});
    ASSERT_TRUE(s.proxy.wait_fired(What::reset_peer));
    expect_error(s, *ws, "connection closed without a close frame");
  }, s.client_side()));
}

// The server's side half-closes (a FIN, no close frame) while the client's
// side stays open: the client ends the connection, the server sees it end.
TEST(WebsocketEofCheckFault, ServerHalfClosesWithoutACloseFrame) {
  Proxied s;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto ws = s.open();
    s.proxy.set({.downstream = {.limit_data = s.downstream_so_far(), .limit_cut = Cut::half_close}});
    ws->send_str("after the limit");
    expect_error(s, *ws, "connection closed without a close frame");
  }, s.client_side()));
}

// A server that stops reading while the client has 1 MB queued: close()
// cannot even send its close frame; bounded anyway.
TEST(WebsocketEofCheckFault, CloseWhileTheServerStopsReading) {
  Proxied s({.rcvbuf = 4096, .sndbuf = 4096});
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto ws = open_then_stall(s);
    close_within(*ws);
  }, s.client_side()));
  EXPECT_EQ(s.server.stats().close_frames, 0);
}

// The same stalled server, and the response dropped instead.
TEST(WebsocketEofCheckFault, DroppedWhileTheServerStopsReading) {
  Proxied s({.rcvbuf = 4096, .sndbuf = 4096});
  drop_and_check(s, [&] { return open_then_stall(s); });
}

// Frames trickled in 7-byte slices, 1 ms apart, 10 ms late: the message
// arrives whole; then the response is dropped.
TEST(WebsocketEofCheckFault, TrickledFramesThenDropped) {
  Proxied s;
  drop_and_check(s, [&] {
    auto ws = s.open();
    s.proxy.set({.downstream = {.latency = std::chrono::milliseconds(10), .slice_bytes = 7,
                                .slice_delay = std::chrono::milliseconds(1)}});
    std::string text(3000, 'z');
    ws->send_str(text);
    auto m = ws->receive();
    EXPECT_EQ(m.type, Message::Type::text);
    EXPECT_TRUE(m.data == text) << m.data.size() << " bytes";
    return ws;
  });
}
