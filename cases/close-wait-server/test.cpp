// close-wait-server: the same tests run against broken.cpp and fixed.cpp.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <unistd.h>

#include "closecheck/gtest.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace close_wait_server;
using closecheck::TcpState;

TEST(CloseWaitServer, OneClientClosesFirst) {
  Server server;
  std::string client;
  auto verdict = closecheck::expect_leaks(expected_after(1, server),
                                          [&] { client = one_client(server); },
                                          closecheck::Reclaim::keep);  // the server still owns it
  EXPECT_TRUE(verdict.ok) << verdict.message;
  if (broken) {
    ASSERT_EQ(verdict.leaked.size(), 1u);
    EXPECT_EQ(verdict.leaked[0].socket->peer, client);
    EXPECT_EQ(server.sessions(), 1u);
  } else {
    EXPECT_EQ(server.sessions(), 0u);
  }
}

TEST(CloseWaitServer, TwoHundredClientsGrowOneCloseWaitEach) {
  Server server;
  auto verdict = closecheck::expect_leaks(
      expected_after(200, server),
      [&] {
        for (int i = 0; i < 200; ++i) one_client(server, "request " + std::to_string(i) + "\n");
      },
      closecheck::Reclaim::keep);
  EXPECT_TRUE(verdict.ok) << verdict.message;
  EXPECT_EQ(server.sessions(), broken ? 200u : 0u);
}

TEST(CloseWaitServer, StoppingTheServerReleasesEverything) {
  // Both variants: what the broken server holds, it gives back when it stops.
  EXPECT_TRUE(closecheck::NoLeaks([] {
    Server server;
    for (int i = 0; i < 5; ++i) one_client(server);
  }));
}

// Under a low RLIMIT_NOFILE (in a forked child, so the test process keeps its
// limit), the broken server fills its table with CLOSE_WAIT sockets, accept()
// fails with EMFILE and it stops answering; the fixed one serves every client.
TEST(CloseWaitServer, UnderAnFdLimit) {
  constexpr int headroom = 10, clients = 40;
  fixtures::Forked child([](int to_parent, int from_parent) {
    Server server({.on_accept_error = [to_parent](const error_code& ec) {
      if (ec == asio::error::no_descriptors) (void)!write(to_parent, "EMFILE\n", 7);
    }});
    rlimit limit{};
    getrlimit(RLIMIT_NOFILE, &limit);
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

  int served = 0;
  bool emfile = false;
  for (int i = 0; i < clients && !emfile; ++i) {
    auto client = fixtures::connect_tcp("127.0.0.1", port);  // completes in the backlog
    fixtures::send_all(client.get(), "hello\n");
    pollfd fds[] = {{client.get(), POLLIN, 0}, {child.from_child(), POLLIN, 0}};
    ASSERT_GT(poll(fds, 2, 10'000), 0) << "neither an answer nor EMFILE after client " << i;
    if (fds[1].revents) emfile = true;
    else if (fixtures::read_until(client.get(), '\n', std::chrono::seconds(10)) == "ok: hello\n")
      ++served;
  }
  child.close_to_child();
  EXPECT_EQ(child.wait(std::chrono::seconds(10)), 0);
  if (broken) {
    EXPECT_TRUE(emfile);
    // One CLOSE_WAIT fd per client until the limit: about `headroom` clients
    // (a descriptor that some library held only briefly at the moment the
    // limit was set can shift it by one).
    EXPECT_NEAR(served, headroom, 2);
  } else {
    EXPECT_FALSE(emfile);
    EXPECT_EQ(served, clients);
  }
}
