// close-wait-server with a client not written here: socat sends a line,
// half-closes when its stdin ends, and exits once the server closes (or
// after its own 0.5 s -t timeout when the server never does).
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace close_wait_server;

TEST(CloseWaitServerInterop, SocatClientClosesFirst) {
  Server server;
  fixtures::Finished socat;
  auto target = "TCP:127.0.0.1:" + std::to_string(server.endpoint().port());
  auto leaks = closecheck::Leaks(
      expected_after(1, server),
      [&] { socat = fixtures::Process::run({"socat", "-", target}, "hello\n", std::chrono::seconds(20)); });
  EXPECT_EQ(socat.exit_code, 0) << socat.err;
  EXPECT_EQ(socat.out, "ok: hello\n");
  EXPECT_TRUE(leaks);
}
