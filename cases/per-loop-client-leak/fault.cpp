// per-loop-client-leak under injected faults (label fault): each test is one
// iteration of the user's loop (a client, a GET under run()) against a server
// that resets, stalls, closes early, answers garbage, cuts the body or
// trickles it, through fixtures::fault::Proxy or a scripted fixtures::fault::Peer.
// Every fault gives the client an error (or the whole body) in bounded time.
// Fixed: nothing left open. Broken: exactly one loop's fds (epoll, eventfd,
// timerfd) whatever the fault: the loop is made when the client is
// constructed, before any byte moves. Reclaimed with clear_registry().
#include <gtest/gtest.h>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/proxy.hpp"
#include "fixtures/http/server.hpp"
#include "scenario.hpp"

using namespace per_loop_client_leak;
using namespace fixtures::fault;
using closecheck::Reclaim;
namespace bhttp = boost::beast::http;

namespace {

// The client's sockets only: the others have the client's port (the proxy or
// the peer) or one of `behind` (the server) as local address, or a server as peer.
closecheck::Options client_side(std::uint16_t port, std::vector<std::uint16_t> behind) {
  return {.ignore = {[port, behind](const closecheck::Fd& fd) {
    if (!fd.socket) return false;
    auto at = [](std::uint16_t p) { return "127.0.0.1:" + std::to_string(p); };
    if (fd.socket->local == at(port)) return true;
    for (auto p : behind)
      if (fd.socket->local == at(p) || fd.socket->peer == at(p)) return true;
    return false;
  }}};
}

struct Outcome {
  boost::system::error_code ec;
  Response response;
};

// One iteration against port (where the client connects), with the leak
// check: broken, one loop; fixed, nothing. `behind`: the server behind a proxy.
Outcome one_iteration(std::uint16_t port, std::vector<std::uint16_t> behind,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  Outcome out;
  auto verdict = closecheck::expect_leaks(expected_after(1), [&] {
    try {
      out.response = fetch_once({.port = port}, timeout);
    } catch (const boost::system::system_error& e) {
      out.ec = e.code();
    }
  }, Reclaim::keep, client_side(port, behind));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(registered_loops(), broken ? 1u : 0u);
  clear_registry();
  return out;
}

const std::string head_end = "\r\n\r\n";

}  // namespace

// The network resets the connection once the request is in.
TEST(PerLoopClientLeakFault, ServerResets) {
  fixtures::http::Server server;
  Proxy proxy(server.port(), {.upstream = {.limit_data = 10, .limit_cut = Cut::reset}});
  auto out = one_iteration(proxy.port(), {server.port()});
  EXPECT_EQ(out.ec, boost::asio::error::connection_reset) << out.ec.message();
  EXPECT_TRUE(proxy.wait_idle());
}

// The server's answers never arrive (toxiproxy's timeout, never closing):
// the client's own deadline ends the fetch.
TEST(PerLoopClientLeakFault, ServerStalls) {
  fixtures::http::Server server;
  Proxy proxy(server.port(), {.downstream = {.timeout = std::chrono::milliseconds(0)}});
  auto out = one_iteration(proxy.port(), {server.port()}, std::chrono::milliseconds(300));
  EXPECT_EQ(out.ec, boost::beast::error::timeout) << out.ec.message();
  EXPECT_TRUE(proxy.wait_idle());
}

// A server that reads the request and half-closes without an answer.
TEST(PerLoopClientLeakFault, ServerHalfClosesWithoutAnswering) {
  Peer peer(Script().read_until(head_end).shutdown_write().wait_eof());
  auto out = one_iteration(peer.port(), {});
  EXPECT_EQ(out.ec, bhttp::error::end_of_stream) << out.ec.message();
  EXPECT_TRUE(peer.wait([](const PeerStats& s) { return s.finished == 1; }));
}

// An answer that is HTTP in shape with a header that is not.
TEST(PerLoopClientLeakFault, ServerAnswersABadHeader) {
  Peer peer(Script().read_until(head_end).send("HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n").wait_eof());
  auto out = one_iteration(peer.port(), {});
  EXPECT_EQ(out.ec, bhttp::error::bad_content_length) << out.ec.message();
}

// The body cut after 5000 of its 20000 bytes, with a FIN.
TEST(PerLoopClientLeakFault, BodyCutShort) {
  fixtures::http::Server server(std::string(20000, 'b'));
  Proxy proxy(server.port(), {.downstream = {.limit_data = 5000, .limit_cut = Cut::close}});
  auto out = one_iteration(proxy.port(), {server.port()});
  EXPECT_EQ(out.ec, bhttp::error::partial_message) << out.ec.message();
  EXPECT_TRUE(proxy.wait_fired(What::limit_data));
  EXPECT_TRUE(proxy.wait_idle());
}

// The headers and the first bytes of the body, then an RST.
TEST(PerLoopClientLeakFault, ResetInTheBody) {
  Peer peer(Script().read_until(head_end).send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc").reset());
  auto out = one_iteration(peer.port(), {});
  EXPECT_EQ(out.ec, boost::asio::error::connection_reset) << out.ec.message();
}

// The answer trickled in 3-byte slices, 1 ms apart, 20 ms late: all of it
// arrives, intact.
TEST(PerLoopClientLeakFault, TrickledAnswerArrivesWhole) {
  fixtures::http::Server server(std::string(1000, 't'));
  Proxy proxy(server.port(), {.downstream = {.latency = std::chrono::milliseconds(20), .slice_bytes = 3,
                                             .slice_delay = std::chrono::milliseconds(1)}});
  auto out = one_iteration(proxy.port(), {server.port()});
  EXPECT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.response.status, 200u);
  EXPECT_TRUE(out.response.body == server.body()) << out.response.body.size() << " bytes";
  EXPECT_EQ(server.requests(), 1u);
}
