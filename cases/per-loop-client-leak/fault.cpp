// per-loop-client-leak under injected faults (label fault): each test is one
// iteration of the user's loop (a client, a GET under run()) against a server
// that resets, stalls, closes early, answers garbage, cuts the body or
// trickles it, through fixtures::fault::Proxy, in front of an HTTP server or
// a scripted fixtures::fault::Peer. Every fault gives the client an error (or
// the whole body) in bounded time. Fixed: nothing left open. Broken: exactly
// one loop's fds (epoll, eventfd, timerfd) whatever the fault: the loop is
// made when the client is constructed, before any byte moves. Reclaimed with
// clear_registry(). The tests are rows of the fault matrix
// (fixtures/fault/matrix.hpp): the client is this case's, so every row plays
// it (Fault::custom) and says which error it ends with.
#include <gtest/gtest.h>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/matrix.hpp"
#include "fixtures/http/server.hpp"
#include "scenario.hpp"

using namespace per_loop_client_leak;
using namespace fixtures::fault;
namespace bhttp = boost::beast::http;

namespace {

// What the client talks to, through the proxy: an HTTP server, or a Peer
// doing what its script says (what a proxy cannot do).
struct Upstream {
  std::unique_ptr<fixtures::http::Server> http;
  std::unique_ptr<Peer> peer;
  std::uint16_t port() const { return http ? http->port() : peer->port(); }
};
auto http_server(std::string body = "hello\n") {
  return [body] { return std::make_unique<Upstream>(std::make_unique<fixtures::http::Server>(body), nullptr); };
}
auto peer_with(Script script) {
  return [script] { return std::make_unique<Upstream>(nullptr, std::make_unique<Peer>(script)); };
}

// What one iteration ended with.
struct Outcome {
  boost::system::error_code ec;
  Response response;
};
const Outcome& outcome(const Seen& seen) { return std::any_cast<const Outcome&>(seen.state); }

// One iteration of the user's loop through the proxy, inside the leak check,
// so that everything it holds is gone by the check.
auto one_iteration(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  return [timeout](Upstream&, Proxy& proxy, Seen& seen) {
    Outcome out;
    try {
      out.response = fetch_once({.port = proxy.port()}, timeout);
    } catch (const boost::system::system_error& e) {
      out.ec = e.code();
    }
    seen.state = out;
  };
}
// The iteration ended with ec.
auto ended_with(boost::system::error_code ec) {
  return [ec](Upstream&, Seen& seen) { EXPECT_EQ(outcome(seen).ec, ec) << outcome(seen).ec.message(); };
}

// Broken: one loop; fixed: nothing. Only the client's sockets count: not the
// upstream's accepted sockets, nor the proxy's connections to it.
const Scenario<Upstream> scenario{
    .suite = "PerLoopClientLeakFault",
    .port = [](const Upstream& u) { return u.port(); },
    .options = [](const Upstream& u) {
      return closecheck::Options{.ignore = {[at = "127.0.0.1:" + std::to_string(u.port())](const closecheck::Fd& fd) {
        return fd.socket && (fd.socket->local == at || fd.socket->peer == at);
      }}};
    },
    .then = [](Upstream&, Seen&) {
      EXPECT_EQ(registered_loops(), broken ? 1u : 0u);
      clear_registry();
    },
};
const LeaksOf<Upstream> one_loop = [](const Upstream&) { return expected_after(1); };
const auto proxy_idle = [](Upstream&, Proxy& p, Seen&) { EXPECT_TRUE(p.wait_idle()); };
const std::string head_end = "\r\n\r\n";

const bool registered = register_matrix(scenario, {
    // The network resets the connection once the request is in.
    {.name = "ServerResets", .fault = Fault::custom,
     .expect = {.leaks = one_loop, .settle = proxy_idle, .then = ended_with(boost::asio::error::connection_reset)},
     .toxics = Faults{.upstream = {.limit_data = 10, .limit_cut = Cut::reset}},
     .make = http_server(), .client = one_iteration()},
    // The server's answers never arrive (toxiproxy's timeout, never closing):
    // the client's own deadline ends the fetch.
    {.name = "ServerStalls", .fault = Fault::custom,
     .expect = {.leaks = one_loop, .then = ended_with(boost::beast::error::timeout)},
     .toxics = Faults{.downstream = {.timeout = std::chrono::milliseconds(0)}},
     .make = http_server(), .client = one_iteration(std::chrono::milliseconds(300))},
    // A server that reads the request and half-closes without an answer.
    {.name = "ServerHalfClosesWithoutAnswering", .fault = Fault::custom,
     .expect = {.leaks = one_loop,
                .settle = [](Upstream& u, Proxy&, Seen&) {
                  EXPECT_TRUE(u.peer->wait([](const PeerStats& s) { return s.finished == 1; }));
                },
                .then = ended_with(bhttp::error::end_of_stream)},
     .make = peer_with(Script().read_until(head_end).shutdown_write().wait_eof()), .client = one_iteration()},
    // An answer that is HTTP in shape with a header that is not.
    {.name = "ServerAnswersABadHeader", .fault = Fault::custom,
     .expect = {.leaks = one_loop, .then = ended_with(bhttp::error::bad_content_length)},
     .make = peer_with(Script().read_until(head_end).send("HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n").wait_eof()),
     .client = one_iteration()},
    // The body cut after 5000 of its 20000 bytes, with a FIN.
    {.name = "BodyCutShort", .fault = Fault::custom,
     .expect = {.leaks = one_loop,
                .settle = [](Upstream&, Proxy& p, Seen&) {
                  EXPECT_TRUE(p.wait_fired(What::limit_data));
                  EXPECT_TRUE(p.wait_idle());
                },
                .then = ended_with(bhttp::error::partial_message)},
     .toxics = Faults{.downstream = {.limit_data = 5000, .limit_cut = Cut::close}},
     .make = http_server(std::string(20000, 'b')), .client = one_iteration()},
    // The headers and the first bytes of the body, then an RST.
    {.name = "ResetInTheBody", .fault = Fault::custom,
     .expect = {.leaks = one_loop, .then = ended_with(boost::asio::error::connection_reset)},
     .make = peer_with(Script().read_until(head_end).send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc").reset()),
     .client = one_iteration()},
    // The answer trickled in 3-byte slices, 1 ms apart, 20 ms late: all of it
    // arrives, intact.
    {.name = "TrickledAnswerArrivesWhole", .fault = Fault::custom,
     .expect = {.leaks = one_loop,
                .then = [](Upstream& u, Seen& seen) {
                  const auto& out = outcome(seen);
                  EXPECT_FALSE(out.ec) << out.ec.message();
                  EXPECT_EQ(out.response.status, 200u);
                  EXPECT_TRUE(out.response.body == u.http->body()) << out.response.body.size() << " bytes";
                  EXPECT_EQ(u.http->requests(), 1u);
                }},
     .toxics = Faults{.downstream = {.latency = std::chrono::milliseconds(20), .slice_bytes = 3,
                                     .slice_delay = std::chrono::milliseconds(1)}},
     .make = http_server(std::string(1000, 't')), .client = one_iteration()},
});

}  // namespace
