// close-wait-server: the same tests run against broken.cpp and fixed.cpp.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "closecheck/gtest.hpp"
#include "closecheck/sweep.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace close_wait_server;
using closecheck::TcpState;

TEST(CloseWaitServer, OneClientClosesFirst) {
  Server server;
  std::string client;
  auto leaks = closecheck::Leaks(expected_after(1, server),
                                 [&] { client = one_client(server); });  // the server still owns it
  EXPECT_TRUE(leaks);
  if (broken) {
    ASSERT_EQ(leaks.leaked.size(), 1u);
    EXPECT_EQ(leaks.leaked[0].socket->peer, client);
    EXPECT_EQ(server.sessions(), 1u);
    // The EOF handler returned without a new read (a server that took EOF
    // for "no request yet" would read again, and spin): nothing holds the
    // session but the manager, so nothing will ever close its socket.
    EXPECT_TRUE(closecheck::eventually([&] { return server.orphaned_sessions() == 1; }, {.settle = std::chrono::seconds(10)}))
        << server.orphaned_sessions() << " of " << server.sessions() << " sessions orphaned";
  } else {
    EXPECT_EQ(server.sessions(), 0u);
  }
}

TEST(CloseWaitServer, TwoHundredClientsGrowOneCloseWaitEach) {
  Server server;
  auto leaks = closecheck::Leaks(
      expected_after(200, server),
      [&] {
        for (int i = 0; i < 200; ++i) one_client(server, "request " + std::to_string(i) + "\n");
      });
  EXPECT_TRUE(leaks);
  EXPECT_EQ(server.sessions(), broken ? 200u : 0u);
  if (broken) {
    EXPECT_TRUE(closecheck::eventually([&] { return server.orphaned_sessions() == 200; }, {.settle = std::chrono::seconds(10)}))
        << server.orphaned_sessions() << " of " << server.sessions() << " sessions orphaned";
  }
}

TEST(CloseWaitServer, StoppingTheServerReleasesEverything) {
  // Both variants: what the broken server holds, it gives back when it stops.
  EXPECT_TRUE(closecheck::NoLeaks([] {
    Server server;
    for (int i = 0; i < 5; ++i) one_client(server);
  }));
}

namespace {

// The server's sockets on `port` in `states` that process `pid` holds, as the
// kernel has them (NETLINK_SOCK_DIAG, matched to /proc/PID/fd by inode). A
// connection still waiting in the listen backlog has no fd: it is not there.
std::vector<closecheck::HeldElsewhere> held_by(pid_t pid, std::uint16_t port, std::uint32_t states) {
  std::vector<closecheck::HeldElsewhere> held;
  for (auto& h : closecheck::held_elsewhere(states))
    if (h.pid == pid && h.socket.local == "127.0.0.1:" + std::to_string(port)) held.push_back(std::move(h));
  return held;
}

}  // namespace

// Under a low RLIMIT_NOFILE (in a forked child, so the test process keeps its
// limit), the broken server fills its table with CLOSE_WAIT sockets, accept()
// fails with EMFILE and it stops answering; the fixed one serves every client.
// The states are the kernel's, read while the child still runs.
TEST(CloseWaitServer, UnderAnFdLimit) {
  constexpr int headroom = 10, clients = 40;
  fixtures::Forked child([](int to_parent, int from_parent) {
    Server server({.on_accept_error = [to_parent](const error_code& ec) {
      if (ec == asio::error::no_descriptors) (void)!write(to_parent, "EMFILE\n", 7);
    }});
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
    // Exactly `headroom` free fd numbers below the limit: one per session.
    limit.rlim_cur = static_cast<rlim_t>(fixtures::fd_limit_for_headroom(headroom));
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return 3;
    auto port = std::to_string(server.endpoint().port()) + "\n";
    (void)!write(to_parent, port.data(), port.size());
    char c;
    while (read(from_parent, &c, 1) > 0) {  // until the parent closes its end
    }
    return 0;
  });
  auto port_line = fixtures::read_until(child.from_child(), '\n', std::chrono::seconds(10));
  ASSERT_TRUE(port_line) << "the child did not start its server";
  auto port = static_cast<std::uint16_t>(std::stoi(*port_line));

  std::vector<std::string> served;  // the served clients' addresses, as ss shows them
  bool emfile = false;
  for (int i = 0; i < clients && !emfile; ++i) {
    auto client = fixtures::connect_tcp("127.0.0.1", port);  // completes in the backlog
    auto address = closecheck::inspect(client.get())->socket->local;
    fixtures::send_all(client.get(), "hello\n");
    pollfd fds[] = {{client.get(), POLLIN, 0}, {child.from_child(), POLLIN, 0}};
    ASSERT_GT(poll(fds, 2, 10'000), 0) << "neither an answer nor EMFILE after client " << i;
    bool accepted = fds[0].revents != 0;
    if (fds[1].revents) {
      emfile = true;
      // A full table fails accept(2) even with nothing queued, so EMFILE can
      // come from the accept right after this client's own. The kernel says
      // which: an accepted client's server side is an fd of the child's.
      for (const auto& h : held_by(child.pid(), port, closecheck::state_bit(TcpState::established)))
        accepted = accepted || h.socket.peer == address;
    }
    if (accepted && fixtures::read_until(client.get(), '\n', std::chrono::seconds(10)) == "ok: hello\n")
      served.push_back(address);
  }  // each client closes first: FIN

  // Broken: one CLOSE_WAIT socket per served client, each held by the child,
  // the whole table. Fixed: none (each session closed at its client's FIN).
  std::vector<std::string> expected = broken ? served : std::vector<std::string>{};
  std::sort(expected.begin(), expected.end());
  std::vector<closecheck::HeldElsewhere> held;
  std::vector<std::string> peers;
  bool as_expected = closecheck::eventually([&] {
    held = held_by(child.pid(), port, closecheck::state_bit(TcpState::close_wait));
    peers.clear();
    for (const auto& h : held) peers.push_back(h.socket.peer);
    std::sort(peers.begin(), peers.end());
    return peers == expected;
  }, {.settle = std::chrono::seconds(10)});
  EXPECT_TRUE(as_expected) << [&] {
    std::string what = "expected " + std::to_string(expected.size()) + " CLOSE_WAIT sockets held by the child, "
                       "one per served client; the kernel has:\n";
    for (const auto& h : held) what += closecheck::describe(h) + "\n";
    return what;
  }();
  if (broken) {
    EXPECT_TRUE(emfile);
    EXPECT_EQ(served.size(), static_cast<std::size_t>(headroom)) << "every free fd number went to one session";
  } else {
    EXPECT_FALSE(emfile);
    EXPECT_EQ(served.size(), static_cast<std::size_t>(clients));
  }
  child.close_to_child();
  EXPECT_EQ(child.wait(std::chrono::seconds(10)), 0);
}
