// inherited-socket: the same tests run against broken.cpp and fixed.cpp. The
// leak is in another process, so the per-test check (this process) is clean
// in both variants; the tests look at the helper with held_elsewhere().
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>

#include "closecheck/gtest.hpp"
#include "closecheck/netns.hpp"
#include "closecheck/sites.hpp"
#include "scenario.hpp"

using namespace inherited_socket;
using namespace std::chrono_literals;

// The premise, checked on this machine's Asio in both variants: it creates
// the listening, connected and accepted sockets without close-on-exec. If a
// Boost upgrade changes that, this fails and the case needs a new look.
TEST(InheritedSocket, AsioOpensSocketsWithoutCloseOnExec) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  tcp::socket connected(io);
  connected.connect(acceptor.local_endpoint());
  tcp::socket accepted = acceptor.accept();
  EXPECT_FALSE(close_on_exec(acceptor.native_handle()));
  EXPECT_FALSE(close_on_exec(connected.native_handle()));
  EXPECT_FALSE(close_on_exec(accepted.native_handle()));
}

// The fix sets FD_CLOEXEC once Asio has opened the listener (server.cpp, the
// constructor): until then a fork and exec on another thread would take it.
// What closes that window, with this Asio: a descriptor created with
// SOCK_CLOEXEC and handed to the acceptor with assign() (asio #523's
// workaround). It is close-on-exec from its first moment and serves as ever;
// accepted connections still come from accept(), without it.
TEST(InheritedSocket, SockCloexecAtCreationLeavesNoWindow) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(close_on_exec(fd));
  asio::io_context io;
  tcp::acceptor acceptor(io);
  acceptor.assign(tcp::v4(), fd);
  acceptor.set_option(tcp::acceptor::reuse_address(true));
  acceptor.bind(tcp::endpoint(asio::ip::address_v4::loopback(), 0));
  acceptor.listen();
  EXPECT_TRUE(close_on_exec(acceptor.native_handle()));
  tcp::socket connected(io);
  connected.connect(acceptor.local_endpoint());
  tcp::socket accepted = acceptor.accept();
  EXPECT_FALSE(close_on_exec(accepted.native_handle()));
}

TEST(InheritedSocket, ServerSocketsCloseOnExecOnlyWhenFixed) {
  Helpers helpers;
  Server server(helpers);
  EXPECT_EQ(close_on_exec(server.listening_fd()), !broken);
  // The listener the broken variant's helpers keep was opened in this case's server.
  auto listening = closecheck::inspect(server.listening_fd());
  ASSERT_TRUE(listening);
  std::vector<closecheck::Fd> fds{*listening};
  closecheck::find_open_sites(fds);
  EXPECT_TRUE(closecheck::tcp(TcpState::listen).opened_in(fixtures::variant.opened_in)(fds[0]))
      << closecheck::report(fds);
}

// The peer's side: the server has closed the connection, but while the helper
// lives no FIN comes (broken); it comes once the helper is gone.
TEST(InheritedSocket, PeerSeesNoEofWhileTheHelperLives) {
  Helpers helpers;
  Server server(helpers);
  auto s = spawn_helper(server);
  auto verdict = expect_held_by(s.helper, expected_in_helper(server.address(), s.client_address, false));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  if (broken) {
    auto held = held_by(s.helper);
    ASSERT_EQ(held.size(), 1u);
    EXPECT_EQ(held[0].command, "cat");
    EXPECT_EQ(fixtures::read_to_eof(s.client.get(), hang), std::nullopt) << "EOF although the helper lives";
    EXPECT_TRUE(helpers.release());  // reclaim: end the helper
  }
  EXPECT_EQ(fixtures::read_to_eof(s.client.get(), 10s), "");
  EXPECT_TRUE(expect_held_by(s.helper, {}).ok);
  EXPECT_TRUE(helpers.release());
}

// After the server stops, the helper still holds the listening socket: the
// port cannot be bound again, and new clients are taken into a backlog that
// nobody accepts from.
TEST(InheritedSocket, ListeningPortStaysBoundAfterTheServerStops) {
  // The port is tried again once freed: no other test may take it meanwhile.
  std::string why;
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  Helpers helpers;
  std::optional<Server> server(std::in_place, helpers);
  auto port = server->endpoint().port();
  auto address = server->address();
  auto s = spawn_helper(*server);
  server.reset();
  auto verdict = expect_held_by(s.helper, expected_in_helper(address, s.client_address, true));
  EXPECT_TRUE(verdict.ok) << verdict.message;
  if (broken) {
    EXPECT_EQ(rebind(port), asio::error::address_in_use);
    auto late = fixtures::connect_tcp("127.0.0.1", port);  // the kernel completes the handshake
    fixtures::send_all(late.get(), "ping\n");
    EXPECT_FALSE(fixtures::wait_readable(late.get(), hang)) << "an answer from a stopped server";
    EXPECT_TRUE(helpers.release());
    EXPECT_EQ(fixtures::read_until(late.get(), '\n', 10s), "");  // the helper's exit resets it
  } else {
    EXPECT_THROW(fixtures::connect_tcp("127.0.0.1", port), std::runtime_error);
  }
  EXPECT_EQ(rebind(port), error_code());
  EXPECT_TRUE(helpers.release());
}

// Not only the connection that asked: every connection open when the helper
// starts goes with it.
TEST(InheritedSocket, EveryConnectionOpenAtSpawnIsInherited) {
  Helpers helpers;
  std::optional<Server> server(std::in_place, helpers);
  auto address = server->address();
  auto idle = fixtures::connect_tcp("127.0.0.1", server->endpoint().port());
  auto idle_address = closecheck::inspect(idle.get())->socket->local;
  fixtures::send_all(idle.get(), "ping\n");
  ASSERT_EQ(fixtures::read_until(idle.get(), '\n', 10s), "pong\n");  // its session is open
  auto s = spawn_helper(*server);
  server.reset();  // closes the idle session too
  auto expected = expected_in_helper(address, s.client_address, true);
  if (broken) expected.push_back({TcpState::established, address, idle_address});
  auto verdict = expect_held_by(s.helper, expected);
  EXPECT_TRUE(verdict.ok) << verdict.message;
  if (broken) EXPECT_EQ(fixtures::read_to_eof(idle.get(), hang), std::nullopt);
  EXPECT_TRUE(helpers.release());
  EXPECT_EQ(fixtures::read_to_eof(idle.get(), 10s), "");
}

// The peer closes first: its FIN reaches a socket only the helper holds, which
// sits in CLOSE_WAIT there until the helper exits.
TEST(InheritedSocket, PeerClosingFirstLeavesCloseWaitInTheHelper) {
  Helpers helpers;
  Server server(helpers);
  auto s = spawn_helper(server);
  // The server has closed its side (it closes right after the answer).
  std::vector<Held> expected;
  if (broken) expected.push_back({TcpState::established, server.address(), s.client_address});
  ASSERT_TRUE(expect_held_by(s.helper, expected).ok);
  s.client.reset();
  if (broken) expected = {{TcpState::close_wait, server.address(), s.client_address}};
  auto verdict = expect_held_by(s.helper, expected);
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_TRUE(helpers.release());
  EXPECT_TRUE(expect_held_by(s.helper, {}).ok);
}

// Bad input: an error line and a close, never a crash, a hang or a child.
TEST(InheritedSocket, UnknownRequestGetsAnErrorAndAClose) {
  Helpers helpers;
  Server server(helpers);
  auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
  fixtures::send_all(client.get(), "launch the missiles\n");
  EXPECT_EQ(fixtures::read_to_eof(client.get(), 10s), "error: unknown request\n");
  EXPECT_TRUE(helpers.pids().empty());
}

TEST(InheritedSocket, OverlongLineGetsAnErrorAndAClose) {
  Helpers helpers;
  Server server(helpers);
  auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
  fixtures::send_all(client.get(), std::string(4096, 'x'));
  EXPECT_EQ(fixtures::read_to_eof(client.get(), 10s), "error: line too long\n");
  EXPECT_TRUE(helpers.pids().empty());
}

TEST(InheritedSocket, HelperThatCannotStartGetsAnError) {
  Helpers helpers;
  Server server(helpers, {.helper = {"/nonexistent/closecheck-helper"}});
  auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
  fixtures::send_all(client.get(), "spawn\n");
  auto answer = fixtures::read_to_eof(client.get(), 10s);
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rfind("error: program not found: /nonexistent/closecheck-helper", 0), 0u) << *answer;
  EXPECT_TRUE(helpers.pids().empty());
}

TEST(InheritedSocket, ClientLeavingWithoutAWordIsCleanedUp) {
  Helpers helpers;
  Server server(helpers);
  // The server ends the session on the client's FIN, while it keeps running.
  EXPECT_TRUE(closecheck::NoLeaks([&] { fixtures::connect_tcp("127.0.0.1", server.endpoint().port()); }));
  auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
  fixtures::send_all(client.get(), "ping\n");
  EXPECT_EQ(fixtures::read_until(client.get(), '\n', 10s), "pong\n");
}
