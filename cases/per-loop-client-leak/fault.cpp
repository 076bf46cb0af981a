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

// The client's sockets only: not those of the servers in `behind` (their
// accepted sockets, and a proxy's connections to them).
closecheck::Options client_side(std::vector<std::uint16_t> behind) {
  return {.ignore = {[behind](const closecheck::Fd& fd) {
    if (!fd.socket) return false;
    for (auto p : behind) {
      auto at = "127.0.0.1:" + std::to_string(p);
      if (fd.socket->local == at || fd.socket->peer == at) return true;
    }
    return false;
  }}};
}

struct Outcome {
  boost::system::error_code ec;
  Response response;
};

// One iteration against what start() makes (a Proxy or a Peer: its port() is
// where the client connects), inside the leak check so that everything it
// holds is gone by the check; done(target) runs before it goes. Broken: one
// loop; fixed: nothing. `behind`: the server behind a proxy.
template <class Start, class Done>
Outcome one_iteration(Start start, Done done, std::vector<std::uint16_t> behind = {},
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  Outcome out;
  auto verdict = closecheck::expect_leaks(expected_after(1), [&] {
    auto target = start();
    try {
      out.response = fetch_once({.port = target->port()}, timeout);
    } catch (const boost::system::system_error& e) {
      out.ec = e.code();
    }
    done(*target);
  }, Reclaim::keep, client_side(behind));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(registered_loops(), broken ? 1u : 0u);
  clear_registry();
  return out;
}

auto proxy_to(const fixtures::http::Server& server, Faults faults) {
  return [&server, faults] { return std::make_unique<Proxy>(server.port(), faults); };
}
auto peer_with(Script script) {
  return [script] { return std::make_unique<Peer>(script); };
}
void nothing_more(const auto&) {}

const std::string head_end = "\r\n\r\n";

}  // namespace

// The network resets the connection once the request is in.
TEST(PerLoopClientLeakFault, ServerResets) {
  fixtures::http::Server server;
  auto out = one_iteration(proxy_to(server, {.upstream = {.limit_data = 10, .limit_cut = Cut::reset}}),
                           [](Proxy& p) { EXPECT_TRUE(p.wait_idle()); }, {server.port()});
  EXPECT_EQ(out.ec, boost::asio::error::connection_reset) << out.ec.message();
}

// The server's answers never arrive (toxiproxy's timeout, never closing):
// the client's own deadline ends the fetch.
TEST(PerLoopClientLeakFault, ServerStalls) {
  fixtures::http::Server server;
  auto out = one_iteration(proxy_to(server, {.downstream = {.timeout = std::chrono::milliseconds(0)}}),
                           nothing_more<Proxy>, {server.port()}, std::chrono::milliseconds(300));
  EXPECT_EQ(out.ec, boost::beast::error::timeout) << out.ec.message();
}

// A server that reads the request and half-closes without an answer.
TEST(PerLoopClientLeakFault, ServerHalfClosesWithoutAnswering) {
  auto out = one_iteration(peer_with(Script().read_until(head_end).shutdown_write().wait_eof()), [](Peer& p) {
    EXPECT_TRUE(p.wait([](const PeerStats& s) { return s.finished == 1; }));
  });
  EXPECT_EQ(out.ec, bhttp::error::end_of_stream) << out.ec.message();
}

// An answer that is HTTP in shape with a header that is not.
TEST(PerLoopClientLeakFault, ServerAnswersABadHeader) {
  auto out = one_iteration(
      peer_with(Script().read_until(head_end).send("HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n").wait_eof()),
      nothing_more<Peer>);
  EXPECT_EQ(out.ec, bhttp::error::bad_content_length) << out.ec.message();
}

// The body cut after 5000 of its 20000 bytes, with a FIN.
TEST(PerLoopClientLeakFault, BodyCutShort) {
  fixtures::http::Server server(std::string(20000, 'b'));
  auto out = one_iteration(proxy_to(server, {.downstream = {.limit_data = 5000, .limit_cut = Cut::close}}),
                           [](Proxy& p) {
                             EXPECT_TRUE(p.wait_fired(What::limit_data));
                             EXPECT_TRUE(p.wait_idle());
                           },
                           {server.port()});
  EXPECT_EQ(out.ec, bhttp::error::partial_message) << out.ec.message();
}

// The headers and the first bytes of the body, then an RST.
TEST(PerLoopClientLeakFault, ResetInTheBody) {
  auto out = one_iteration(
      peer_with(Script().read_until(head_end).send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc").reset()),
      nothing_more<Peer>);
  EXPECT_EQ(out.ec, boost::asio::error::connection_reset) << out.ec.message();
}

// The answer trickled in 3-byte slices, 1 ms apart, 20 ms late: all of it
// arrives, intact.
TEST(PerLoopClientLeakFault, TrickledAnswerArrivesWhole) {
  fixtures::http::Server server(std::string(1000, 't'));
  auto out = one_iteration(proxy_to(server, {.downstream = {.latency = std::chrono::milliseconds(20),
                                                            .slice_bytes = 3,
                                                            .slice_delay = std::chrono::milliseconds(1)}}),
                           nothing_more<Proxy>, {server.port()});
  EXPECT_FALSE(out.ec) << out.ec.message();
  EXPECT_EQ(out.response.status, 200u);
  EXPECT_TRUE(out.response.body == server.body()) << out.response.body.size() << " bytes";
  EXPECT_EQ(server.requests(), 1u);
}
