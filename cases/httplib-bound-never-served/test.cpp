// httplib-bound-never-served: the same tests run against broken.cpp and
// fixed.cpp, on Debian 12's cpp-httplib 0.11.4.
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "closecheck/gtest.hpp"
#include "closecheck/netns.hpp"
#include "scenario.hpp"

using namespace httplib_bound_never_served;

// The premise, checked on this machine's cpp-httplib in both variants, as its
// own test BindServerTest.BindAndListenSeparately does it: bind, stop, destroy.
// The listening socket stays open. If an upgrade changes that, this fails and
// the case needs a new look.
TEST(HttplibPremise, StopWithoutServingKeepsTheListener) {
  std::vector<int> ports;
  auto leaks = closecheck::Leaks(
      {{1, listener(ports)}},
      [&] {
        httplib::Server svr;
        int port = svr.bind_to_any_port("127.0.0.1");
        ASSERT_GT(port, 0);
        ports.push_back(port);
        EXPECT_FALSE(svr.is_running());
        svr.stop();  // closes it only if (is_running_)
      },
      closecheck::Reclaim::close);  // nothing owns it any more
  EXPECT_TRUE(leaks);
}

// ...while a server that did serve gives its listener back on stop().
TEST(HttplibPremise, StopWhileServingClosesTheListener) {
  EXPECT_TRUE(closecheck::NoLeaks([] {
    httplib::Server svr;
    ASSERT_GT(svr.bind_to_any_port("127.0.0.1"), 0);
    std::thread t([&] { svr.listen_after_bind(); });
    ASSERT_TRUE(closecheck::eventually([&] { return svr.is_running(); }, {.settle = 10s}));
    svr.stop();
    t.join();
  }));
}

// The canonical scenario: bound, port reported, mount failed, destroyed.
TEST(BoundNeverServed, MountFailureLeavesTheListener) {
  std::vector<int> ports;
  auto leaks = closecheck::Leaks(expected_after(1, ports), [&] { ports.push_back(failed_start()); },
                                 closecheck::Reclaim::close);  // nothing owns it any more
  EXPECT_TRUE(leaks);
  ASSERT_EQ(ports.size(), 1u);
  if (broken) {
    ASSERT_EQ(leaks.leaked.size(), 1u);
    EXPECT_EQ(leaks.leaked[0].socket->local, "127.0.0.1:" + std::to_string(ports[0]));
  }
}

// A supervisor that restarts the server after each failure: one more
// listening socket per attempt, each on its own port.
TEST(BoundNeverServed, EveryFailedStartLeavesOneMore) {
  std::vector<int> ports;
  auto leaks = closecheck::Leaks(
      expected_after(3, ports),
      [&] {
        for (int i = 0; i < 3; ++i) ports.push_back(failed_start());
      },
      closecheck::Reclaim::close);
  EXPECT_TRUE(leaks);
  EXPECT_EQ(leaks.leaked.size(), broken ? 3u : 0u);
}

// The peer's side: the abandoned port still completes handshakes (listen(2) was
// called in bind_to_any_port) into a backlog that nobody accepts from, so a
// client waits for an answer that never comes. Fixed: connect is refused.
TEST(BoundNeverServed, AClientOfTheAbandonedPortGetsNoAnswer) {
  // The port is connected to after it is freed: no other test may take it.
  std::string why;
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  std::vector<int> ports;
  auto leaks = closecheck::Leaks(expected_after(1, ports), [&] { ports.push_back(failed_start()); });  // closed below, after the client
  ASSERT_TRUE(leaks);
  auto port = static_cast<std::uint16_t>(ports.at(0));
  if (broken) {
    ASSERT_EQ(leaks.leaked.size(), 1u);
    auto client = fixtures::connect_tcp("127.0.0.1", port);  // the kernel completes the handshake
    fixtures::send_all(client.get(), get("/hello.txt"));
    EXPECT_FALSE(fixtures::wait_readable(client.get(), hang)) << "an answer from a server that never served";
    ::close(leaks.leaked[0].number);  // reclaim: the client, still in the backlog, is reset
    EXPECT_EQ(fixtures::read_to_eof(client.get(), 10s), "");
  } else {
    EXPECT_THROW(fixtures::connect_tcp("127.0.0.1", port), std::runtime_error);
  }
}

// Both variants: a server that did serve stops and gives everything back.
TEST(BoundNeverServed, ServedServerStopsClean) {
  Root root;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    FileServer server({.root = root.path()});
    auto answer = request(server.port(), get("/hello.txt"));
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << *answer;
    EXPECT_TRUE(answer->ends_with("\r\n\r\nhello\n")) << *answer;
  }));
}

// Bad input: an error status and a close, never a crash, a hang or a leak.
TEST(BoundNeverServed, MissingFileGets404) {
  Root root;
  FileServer server({.root = root.path()});
  auto answer = request(server.port(), get("/nothing-here.txt"));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rfind("HTTP/1.1 404 Not Found\r\n", 0), 0u) << *answer;
}

TEST(BoundNeverServed, GarbageGets400AndAClose) {
  Root root;
  FileServer server({.root = root.path()});
  auto answer = request(server.port(), "launch the missiles\r\n\r\n");
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rfind("HTTP/1.1 400 Bad Request\r\n", 0), 0u) << *answer;
}

TEST(BoundNeverServed, OverlongRequestLineGets414AndAClose) {
  Root root;
  FileServer server({.root = root.path()});
  auto answer = request(server.port(), get("/" + std::string(10000, 'x')));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rfind("HTTP/1.1 414 ", 0), 0u) << answer->substr(0, 200);
}

TEST(BoundNeverServed, ClientLeavingWithoutAWordIsCleanedUp) {
  Root root;
  FileServer server({.root = root.path()});
  // The server's end of a connection closed by its client goes with it.
  EXPECT_TRUE(closecheck::NoLeaks(
      [&] { fixtures::connect_tcp("127.0.0.1", static_cast<std::uint16_t>(server.port())); }));
  auto answer = request(server.port(), get("/hello.txt"));
  ASSERT_TRUE(answer);
  EXPECT_EQ(answer->rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << *answer;
}
