// inherited-socket with a client not written here: socat sends "spawn",
// half-closes when its stdin ends, and exits when the server's FIN arrives
// (-t 30: or after 30 s without one).
#include <gtest/gtest.h>
#include <unistd.h>

#include "closecheck/gtest.hpp"
#include "scenario.hpp"

using namespace inherited_socket;
using namespace std::chrono_literals;

TEST(InheritedSocketInterop, SocatWaitsForTheFinWhileTheHelperLives) {
  Helpers helpers;
  Server server(helpers);
  fixtures::Process socat({"socat", "-t", "30", "-", "TCP:127.0.0.1:" + std::to_string(server.endpoint().port())});
  ASSERT_EQ(write(socat.stdin_fd(), "spawn\n", 6), 6);  // 6 bytes into an empty pipe: never short
  socat.close_stdin();
  ASSERT_TRUE(closecheck::eventually([&] { return helpers.pids().size() == 1; },
                                     {.settle = std::chrono::seconds(10)}));
  auto helper = helpers.pids()[0];
  if (broken) {
    // socat's half-close (FIN) reached a socket that only the helper holds.
    auto verdict = expect_held_by(helper, {{TcpState::close_wait, server.address(), "127.0.0.1:*"}});
    EXPECT_TRUE(verdict.ok) << verdict.message;
    EXPECT_EQ(socat.wait(hang), std::nullopt) << "socat saw a FIN although the helper holds the socket";
    EXPECT_TRUE(helpers.release());
  }
  auto done = socat.wait(20s);
  ASSERT_TRUE(done) << "socat did not finish";
  EXPECT_EQ(done->exit_code, 0) << done->err;
  EXPECT_EQ(done->out, "started " + std::to_string(helper) + "\n");
  EXPECT_TRUE(helpers.release());
}
