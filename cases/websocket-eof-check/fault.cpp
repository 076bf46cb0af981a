// websocket-eof-check under injected faults (label fault): the client talks
// to the lws echo server through fixtures::fault::Proxy, which drops, cuts,
// resets, stalls or trickles the bytes. Fixed: every fault ends with nothing
// left open, in bounded time. Broken: a response dropped while its connection
// is still alive leaks the socket (asserted, kept: the WebSocket, dying at
// the end of the test, closes it); a fault that ends the connection first is
// clean in both variants. The tests are rows of the fault matrix
// (fixtures/fault/matrix.hpp): the client is this case's, so each row opens a
// WebSocket, sets its fault on the proxy, and drops the response, closes it,
// or reads the error the fault ends it with.
#include <gtest/gtest.h>

#include <future>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/matrix.hpp"
#include "scenario.hpp"

using namespace websocket_eof_check;
using namespace fixtures::fault;
using std::chrono::milliseconds;

namespace {

// The echo server behind a proxy, a client with short lws timeouts, and the
// WebSocket a row opens (it lives to the end of the test; declared last, it
// goes first).
struct Proxied {
  explicit Proxied(Proxy::Options proxy_options = {}) : proxy(server.port(), {}, proxy_options) {}
  fixtures::ws::Server server;
  Proxy proxy;
  Client client{{.timeout_secs = 1}};
  std::unique_ptr<ClientWebSocketResponse> ws;

  // The client's sockets only: not the server's, not the proxy's.
  closecheck::Options client_side() const {
    auto options = websocket_eof_check::client_side(server);
    options.ignore.push_back([p = proxy.address(), s = server.address()](const closecheck::Fd& fd) {
      return fd.socket && (fd.socket->local == p || fd.socket->peer == s);
    });
    return options;
  }
  ClientWebSocketResponse& open() {
    ws = open_echoing(client, proxy.port());
    return *ws;
  }
  // Bytes the proxy has passed to the client so far on its one connection.
  std::size_t downstream_so_far() const { return proxy.stats().bytes_downstream; }
};

const Scenario<Proxied> scenario{
    .suite = "WebsocketEofCheckFault",
    .options = [](const Proxied& s) { return s.client_side(); },
    .proxy = [](Proxied& s) -> Proxy& { return s.proxy; },
};
// The server stops reading (the proxy stalls, small buffers: a zero window).
auto stalled() { return [] { return std::make_unique<Proxied>(Proxy::Options{.rcvbuf = 4096, .sndbuf = 4096}); }; }

// The bug's trigger under a fault: the client opens a WebSocket (in the
// checked block, so its socket is new) and sets the fault; the response is
// then dropped (del ws._response), not closed, while its connection is alive.
// Broken: one socket, ESTABLISHED to the proxy, and the swallowed error;
// fixed: nothing, no log.
template <class OpenUnderFault>
auto drop(OpenUnderFault open_under_fault) {
  return [open_under_fault](Proxied& s, Proxy&, Seen& seen) {
    open_under_fault(s);
    seen.state = s.ws->local_address();
    s.ws->drop_response();
  };
}
const Outcome<Proxied> dropped{
    .leaks = [](const Proxied& s) { return expected_after_release(s.proxy.address()); },
    .then = [](Proxied& s, Seen& seen) {
      EXPECT_EQ(s.client.connector.acquired(), 0u);
      EXPECT_EQ(s.client.connector.pooled(), 0u);
      if (broken) {
        ASSERT_EQ(seen.leaked.size(), 1u);
        EXPECT_EQ(seen.leaked[0].socket->local, std::any_cast<std::string>(seen.state));
        EXPECT_EQ(s.client.log.lines(), std::vector{swallowed_error});
      } else {
        EXPECT_TRUE(s.client.log.lines().empty());
      }
    },
};

// close() has its own bound; a watchdog over it fails the test with this
// message if it hangs anyway (ctest's timeout then ends the stuck process).
void close_within(ClientWebSocketResponse& ws) {
  auto done = std::async(std::launch::async, [&] { ws.close(); });
  ASSERT_EQ(done.wait_for(std::chrono::seconds(20)), std::future_status::ready) << "close() hung";
  EXPECT_TRUE(ws.closed());
}
template <class OpenUnderFault>
auto close(OpenUnderFault open_under_fault) {
  return [open_under_fault](Proxied& s, Proxy&, Seen&) {
    open_under_fault(s);
    close_within(*s.ws);
  };
}
// The closing handshake never done: the server got no close frame.
void no_close_frame(Proxied& s, Seen&) { EXPECT_EQ(s.server.stats().close_frames, 0); }

// A fault that ends the connection: the client reports `error`, closes, and
// nothing is left open (both variants: the close path, not the release path).
template <class OpenUnderFault>
auto ends_in_error(OpenUnderFault open_under_fault) {
  return [open_under_fault](Proxied& s, Proxy&, Seen&) {
    open_under_fault(s);
    if (::testing::Test::HasFatalFailure()) return;
    auto m = s.ws->receive();
    EXPECT_EQ(m.type, Message::Type::error);
    EXPECT_EQ(m.data, "connection closed without a close frame");
    EXPECT_TRUE(s.ws->closed()) << "an error ends the connection";
    EXPECT_TRUE(s.proxy.wait_idle());
    EXPECT_TRUE(s.server.wait_for([](const fixtures::ws::Server::Stats& st) { return st.closed == 1; }));
    EXPECT_TRUE(s.client.log.lines().empty());
  };
}

// The server hears nothing more (toxiproxy's timeout, never closing).
void open_then_silence(Proxied& s) {
  s.open();
  s.proxy.set({.upstream = {.timeout = milliseconds(0)}});
}
// The server stops reading and the client queues 1 MB for it.
void open_then_stall(Proxied& s) {
  auto& ws = s.open();
  s.proxy.set({.upstream = {.stall = true}});
  for (int i = 0; i < 20; ++i) ws.send_str(std::string(50000, 'y'));
}

const bool registered = register_matrix(scenario, {
    // The server hears nothing more; the response is dropped.
    {.name = "DroppedWhileTheServerHearsNothing", .fault = Fault::custom, .expect = dropped,
     .client = drop(open_then_silence)},
    // A server that never answers the close frame (it never gets it): the
    // closing handshake is cut by the client's timeout, the socket is closed.
    {.name = "CloseFrameNeverAnswered", .fault = Fault::custom,
     .expect = {.then = [](Proxied& s, Seen& seen) {
       no_close_frame(s, seen);
       EXPECT_EQ(s.client.connector.acquired(), 0u);
     }},
     .client = close(open_then_silence)},
    // The echo of a 30000-byte message cut 1000 bytes in, with a FIN. (lws
    // delivers no fragment of it, so the client sees a connection without a close frame.)
    {.name = "FrameCutInTheMiddle", .fault = Fault::custom, .client = ends_in_error([](Proxied& s) {
       auto& ws = s.open();
       s.proxy.set({.downstream = {.limit_data = s.downstream_so_far() + 1000, .limit_cut = Cut::close}});
       ws.send_str(std::string(30000, 'x'));
     })},
    // An RST from the network in the middle of a session.
    {.name = "ResetInTheMiddle", .fault = Fault::custom, .client = ends_in_error([](Proxied& s) {
       s.open();
       s.proxy.set({.upstream = {.reset_peer = milliseconds(0)}, .downstream = {.reset_peer = milliseconds(0)}});
       ASSERT_TRUE(s.proxy.wait_fired(What::reset_peer));
     })},
    // The server's side half-closes (a FIN, no close frame) while the client's
    // side stays open: the client ends the connection, the server sees it end.
    {.name = "ServerHalfClosesWithoutACloseFrame", .fault = Fault::custom, .client = ends_in_error([](Proxied& s) {
       auto& ws = s.open();
       s.proxy.set({.downstream = {.limit_data = s.downstream_so_far(), .limit_cut = Cut::half_close}});
       ws.send_str("after the limit");
     })},
    // A server that stops reading while the client has 1 MB queued: close()
    // cannot even send its close frame; bounded anyway.
    {.name = "CloseWhileTheServerStopsReading", .fault = Fault::custom, .expect = {.then = no_close_frame},
     .make = stalled(), .client = close(open_then_stall)},
    // The same stalled server, and the response dropped instead.
    {.name = "DroppedWhileTheServerStopsReading", .fault = Fault::custom, .expect = dropped,
     .make = stalled(), .client = drop(open_then_stall)},
    // Frames trickled in 7-byte slices, 1 ms apart, 10 ms late: the message
    // arrives whole; then the response is dropped.
    {.name = "TrickledFramesThenDropped", .fault = Fault::custom, .expect = dropped,
     .client = drop([](Proxied& s) {
       auto& ws = s.open();
       s.proxy.set({.downstream = {.latency = milliseconds(10), .slice_bytes = 7, .slice_delay = milliseconds(1)}});
       std::string text(3000, 'z');
       ws.send_str(text);
       auto m = ws.receive();
       EXPECT_EQ(m.type, Message::Type::text);
       EXPECT_TRUE(m.data == text) << m.data.size() << " bytes";
     })},
});

}  // namespace
