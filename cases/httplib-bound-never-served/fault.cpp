// httplib-bound-never-served under injected faults (label fault). A fault can
// meet this program in two places:
//
// - The abandoned port (the bug). The broken variant leaves a listener that
//   nobody accepts from, and the kernel still completes handshakes into its
//   backlog: whatever a client does there (reset, half-close, say nothing,
//   come through a proxy) it gets no answer and no close, and the leak stays
//   exactly the one LISTEN socket. A reclaim (closing it) resets the clients
//   in its backlog. Fixed: the port is closed, a connect is refused.
// - A connection the server did serve. The fix changes nothing there (after
//   serving, stop() has already let go of the listener): a reset in the middle
//   of a request, a half-close after it; the server closes that connection,
//   goes on serving, and leaves nothing, in both variants. These two are rows
//   of the fault matrix (fixtures/fault/matrix.hpp); the abandoned port, with
//   no server to put a proxy in front of, stays three TESTs.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "closecheck/gtest.hpp"
#include "closecheck/netns.hpp"
#include "fixtures/fault/matrix.hpp"
#include "scenario.hpp"

using namespace httplib_bound_never_served;
using namespace fixtures::fault;

namespace {

// A server that bound, reported its port and gave up (the scenario). Broken:
// its listener is asserted (1 LISTEN on that port, through cpp-httplib) and
// left to the test, which closes it; fixed: nothing is left.
struct Abandoned {
  std::uint16_t port = 0;
  int listener = -1;  // broken: the leaked descriptor
};

Abandoned abandon() {
  std::vector<int> ports;
  // Reclaim::keep: closed by the test, after its clients.
  auto leaks = closecheck::Leaks(expected_after(1, ports), [&] { ports.push_back(failed_start()); });
  EXPECT_TRUE(leaks);
  Abandoned a{static_cast<std::uint16_t>(ports.at(0))};
  if (broken && leaks.leaked.size() == 1) a.listener = leaks.leaked[0].number;
  return a;
}

// The leaked listener is as it was: still in LISTEN on the port.
bool still_listening(const Abandoned& a) {
  auto info = closecheck::inspect(a.listener);
  return info && info->socket && info->socket->is_tcp() && info->socket->state == TcpState::listen &&
         info->socket->local == "127.0.0.1:" + std::to_string(a.port);
}

}  // namespace

// RST: a client of the abandoned port sends its request and resets. The reset
// reaches a connection nobody accepted and changes nothing: the listener is
// still there, and the next client is taken into the backlog and left waiting.
TEST(BoundNeverServedFault, ClientResetsOnTheAbandonedPort) {
  // The port is connected to after it is freed: no other test may take it.
  std::string why;
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  auto a = abandon();
  if (!broken) {
    EXPECT_THROW(fixtures::connect_tcp("127.0.0.1", a.port), std::runtime_error);
    return;
  }
  ASSERT_GE(a.listener, 0);
  {
    auto client = fixtures::connect_tcp("127.0.0.1", a.port);  // the kernel completes the handshake
    fixtures::send_all(client.get(), get("/hello.txt"));
    fixtures::set_linger_zero(client.get());  // closed here: an RST
  }
  EXPECT_TRUE(still_listening(a));
  auto next = fixtures::connect_tcp("127.0.0.1", a.port);
  fixtures::send_all(next.get(), get("/hello.txt"));
  EXPECT_EQ(ending(next.get(), nullptr, hang), "open") << "an answer or a close from a server that never served";
  ::close(a.listener);  // reclaim: the client in the backlog is reset
  EXPECT_EQ(ending(next.get()), "reset");
}

// Half-close: the request, then the client's FIN. A served connection would
// be answered and closed; on the abandoned port neither comes.
TEST(BoundNeverServedFault, ClientHalfClosesOnTheAbandonedPort) {
  std::string why;
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  auto a = abandon();
  if (!broken) {
    EXPECT_THROW(fixtures::connect_tcp("127.0.0.1", a.port), std::runtime_error);
    return;
  }
  ASSERT_GE(a.listener, 0);
  auto client = fixtures::connect_tcp("127.0.0.1", a.port);
  fixtures::send_all(client.get(), get("/hello.txt"));
  ASSERT_EQ(::shutdown(client.get(), SHUT_WR), 0);
  std::string got;
  EXPECT_EQ(ending(client.get(), &got, hang), "open");
  EXPECT_EQ(got, "");
  EXPECT_TRUE(still_listening(a));
  ::close(a.listener);
  EXPECT_EQ(ending(client.get()), "reset");
}

// A silent peer, through a proxy: the proxy's connect to the abandoned port
// succeeds (to whatever checks a port by connecting to it, the port is up),
// and then nothing: no greeting, no timeout, no close. Fixed: the proxy's
// connect is refused and it resets its client.
TEST(BoundNeverServedFault, SilentPeerThroughAProxyFindsThePortUp) {
  std::string why;
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  auto a = abandon();
  Proxy proxy(a.port);
  auto client = fixtures::connect_tcp("127.0.0.1", proxy.port());
  if (!broken) {
    EXPECT_TRUE(proxy.wait_fired(What::upstream_failed));
    EXPECT_EQ(ending(client.get()), "reset");
    return;
  }
  ASSERT_GE(a.listener, 0);
  ASSERT_TRUE(proxy.wait([](const Stats& s) { return s.accepted == 1; }));
  EXPECT_EQ(ending(client.get(), nullptr, hang), "open");
  EXPECT_EQ(proxy.stats().fired(What::upstream_failed), 0u);
  EXPECT_TRUE(still_listening(a));
  ::close(a.listener);  // the proxy's upstream connection is reset, and it resets the client
  EXPECT_EQ(ending(client.get()), "reset");
}

namespace {

// A server that did serve (both variants the same), on a document root with
// hello.txt. The matrix's check covers the proxy and the client; the
// scenario's then() stops the server and checks what it leaves since before it
// started.
struct Served {
  Root root;
  closecheck::Snapshot before = closecheck::Snapshot::take();
  std::optional<FileServer> server{std::in_place, FileServer::Options{.root = root.path()}};
};

// After the fault, the server goes on serving: a new request is answered 200.
void serves_again(Served& s) {
  auto answer = request(s.server->port(), get("/hello.txt"));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << *answer;
}

const Scenario<Served> served{
    .suite = "BoundNeverServedFault",
    .port = [](const Served& s) { return static_cast<std::uint16_t>(s.server->port()); },
    .request = [](std::size_t) { return get("/hello.txt"); },
    .then = [](Served& s, Seen&) {  // stopping it leaves nothing
      s.server.reset();
      EXPECT_EQ(closecheck::report(closecheck::find_leaks(s.before)), "");
    },
};

const bool registered = register_matrix(served, {
    // A client whose request is cut by an RST after 20 bytes: the server's worker
    // ends that connection, the server goes on serving, and stopping it leaves nothing.
    {.name = "ResetMidRequestOnAServedServer", .fault = Fault::cut_mid_request,
     .expect = {.ending = "reset",
                .settle = [](Served& s, Proxy& proxy, Seen&) {
                  EXPECT_TRUE(proxy.wait_fired(What::limit_data));
                  EXPECT_TRUE(proxy.wait_idle());
                  serves_again(s);
                }},
     .cut_at = 20,
     .toxics = Faults{.upstream = {.limit_data = 20, .limit_cut = Cut::reset}}},
    // A served client that half-closes after its request (the FIN passed through
    // the proxy) gets the server's close, and either the whole answer or none:
    // before each write cpp-httplib 0.11 checks the peer (SocketStream::
    // is_writable() peeks at the socket), and a FIN that is already there counts
    // as a peer that is gone. Which comes first is the scheduler's. Either way
    // nothing is left behind and the server goes on serving.
    {.name = "HalfCloseAfterTheRequestOnAServedServer", .fault = Fault::client_half_closes,
     .expect = {.ending = "eof",
                .settle = [](Served& s, Proxy& proxy, Seen&) {
                  EXPECT_TRUE(proxy.wait_idle());
                  serves_again(s);
                },
                .then = [](Served&, Seen& seen) {
                  if (!seen.got.empty()) {
                    EXPECT_EQ(seen.got.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << seen.got;
                    EXPECT_TRUE(seen.got.ends_with("\r\n\r\nhello\n")) << seen.got;
                  }
                }}},
});

}  // namespace
