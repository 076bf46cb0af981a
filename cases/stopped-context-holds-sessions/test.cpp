// stopped-context-holds-sessions: the same tests run against broken.cpp and fixed.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <optional>

#include "closecheck/gtest.hpp"
#include "scenario.hpp"

using namespace stopped_context;
using closecheck::TcpState;

namespace {
const closecheck::Options patient{.settle = std::chrono::seconds(10)};

// The TCP sockets in LISTEN on `local` ("127.0.0.1:PORT") that this process holds.
// This process's TCP sockets on `local`: in LISTEN, or connected to `peer`.
std::size_t sockets_on(const std::string& local, const std::string& peer = {}) {
  std::size_t n = 0;
  const auto now = closecheck::Snapshot::take();
  for (const auto& fd : now.fds()) {
    auto info = closecheck::inspect(fd.number);
    if (info && info->socket && info->socket->is_tcp() && info->socket->local == local &&
        (peer.empty() ? info->socket->state == TcpState::listen : info->socket->peer == peer))
      ++n;
  }
  return n;
}
}  // namespace

TEST(StoppedServer, ClientsThatCloseAfterStop) {
  Server server;
  std::vector<std::string> clients;
  auto leaks = closecheck::Leaks(expected_after_stop(3, server),
                                 [&] { clients = close_after_stop(server, 3); });  // pending handlers own them
  EXPECT_TRUE(leaks);
  EXPECT_FALSE(server.running());
  if (broken) {
    std::vector<std::string> peers;
    for (const auto& fd : leaks.leaked) peers.push_back(fd.socket->peer);
    std::sort(peers.begin(), peers.end());
    std::sort(clients.begin(), clients.end());
    EXPECT_EQ(peers, clients);
    EXPECT_EQ(server.sessions(), 3u);  // held by the handlers of their pending reads
  }
}

TEST(StoppedServer, FiftyClientsLeaveFiftyCloseWait) {
  Server server;
  EXPECT_TRUE(closecheck::Leaks(expected_after_stop(50, server),
                                          [&] { close_after_stop(server, 50); }));
}

TEST(StoppedServer, DestroyingTheContextReleasesThem) {
  auto before = closecheck::Snapshot::take();
  std::optional<Server> server(std::in_place);
  EXPECT_TRUE(closecheck::Leaks(expected_after_stop(2, *server),
                                          [&] { close_after_stop(*server, 2); }));
  server.reset();  // ~io_context destroys the queued handlers, their sessions, and the sockets
  EXPECT_EQ(closecheck::report(closecheck::find_leaks(before)), "");
}

TEST(StoppedServer, RestartAfterStop) {
  Server server;
  auto before = closecheck::Snapshot::take();
  EXPECT_TRUE(closecheck::Leaks(expected_after_stop(2, server),
                                          [&] { close_after_stop(server, 2); }));
  server.restart();
  // Broken: the pending reads now complete with EOF and the sessions close.
  EXPECT_EQ(closecheck::report(closecheck::find_leaks(before, patient)), "");
  EXPECT_TRUE(closecheck::eventually([&] { return server.sessions() == 0; }, patient));
  // Both: the restarted server serves, and releases, new clients.
  EXPECT_TRUE(closecheck::NoLeaks([&] { served_client(server, "after restart\n"); }, patient));
}

// What a client that stays connected sees depends on the variant: the broken
// stop() only pauses its session, the fixed one ends it.
TEST(StoppedServer, ClientThatStaysConnectedAcrossStop) {
  Server server;
  auto client = served_client(server);
  server.stop();
  if (broken) {
    fixtures::send_all(client.fd.get(), "again\n");  // queued in the kernel, unanswered
    server.restart();
    EXPECT_EQ(fixtures::read_until(client.fd.get(), '\n', std::chrono::seconds(10)), "ok: again\n");
  } else {
    EXPECT_EQ(fixtures::read_to_eof(client.fd.get(), std::chrono::seconds(10)), "");  // FIN at stop
    server.restart();
    EXPECT_TRUE(closecheck::NoLeaks([&] { served_client(server); }, patient));
  }
}

TEST(StoppedServer, ClientThatResetsAfterStop) {
  Server server;
  std::vector<closecheck::Expected> expected;
  if (broken) expected = {{1, closecheck::tcp(TcpState::close).local(here(server))}};
  auto leaks = closecheck::Leaks(expected, [&] {
    auto client = served_client(server);
    server.stop();
    fixtures::set_linger_zero(client.fd.get());  // close() sends RST
  });
  EXPECT_TRUE(leaks);
}

// Neither stop() closes the acceptor (Asio's HTTP server example closes it in
// its stop): restart() accepts on it again. While stopped, the port stays in
// LISTEN and a new client's handshake completes into the backlog, unanswered.
TEST(StoppedServer, ClientThatConnectsWhileStoppedIsServedAfterRestart) {
  Server server;
  server.stop();
  EXPECT_EQ(sockets_on(here(server)), 1u);
  auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
  fixtures::send_all(client.get(), "hello\n");
  // The handshake completed into the listener's backlog, and no descriptor
  // holds the server's end: nothing can answer until restart() accepts it.
  auto mine = closecheck::inspect(client.get());
  ASSERT_TRUE(mine && mine->socket);
  EXPECT_EQ(mine->socket->state, TcpState::established);
  EXPECT_EQ(sockets_on(here(server), mine->socket->local), 0u) << "a stopped server accepted a client";
  server.restart();
  EXPECT_EQ(fixtures::read_until(client.get(), '\n', std::chrono::seconds(10)), "ok: hello\n");
}

TEST(StoppedServer, ClientThatClosesWhileRunningIsReleased) {
  Server server;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    for (int i = 0; i < 5; ++i) served_client(server);
  }, patient));
  EXPECT_TRUE(closecheck::eventually([&] { return server.sessions() == 0; }, patient));
}

TEST(StoppedServer, OverlongLineEndsTheSession) {
  Server server;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
    fixtures::send_all(client.get(), std::string(max_line, 'x'));  // no '\n' within max_line
    EXPECT_EQ(fixtures::read_to_eof(client.get(), std::chrono::seconds(10)), "");
  }, patient));
}

TEST(StoppedServer, StopTwiceAndRestartWhileRunning) {
  Server server;
  EXPECT_THROW(server.restart(), std::logic_error);
  server.stop();
  server.stop();
  EXPECT_FALSE(server.running());
  server.restart();
  EXPECT_TRUE(server.running());
  EXPECT_TRUE(closecheck::NoLeaks([&] { served_client(server); }, patient));
}
