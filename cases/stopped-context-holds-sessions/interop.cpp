// stopped-context-holds-sessions with a client not written here: socat sends a
// line and reads the answer; the server stops; then socat's stdin ends, so it
// half-closes, and it exits once the server closes (or after its own 0.5 s -t
// timeout when the server never does).
#include <gtest/gtest.h>
#include <unistd.h>

#include "closecheck/gtest.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace stopped_context;

TEST(StoppedServerInterop, SocatClosesAfterStop) {
  Server server;
  std::optional<fixtures::Finished> socat;
  auto leaks = closecheck::Leaks(expected_after_stop(1, server), [&] {
    fixtures::Process p({"socat", "-", "TCP:" + here(server)});
    EXPECT_EQ(write(p.stdin_fd(), "hello\n", 6), 6);  // a pipe: one small write
    auto answer = fixtures::read_until(p.stdout_fd(), '\n', std::chrono::seconds(20));
    EXPECT_EQ(answer, "ok: hello\n");
    server.stop();
    p.close_stdin();
    socat = p.wait(std::chrono::seconds(20));
  });
  ASSERT_TRUE(socat) << "socat did not exit";
  EXPECT_EQ(socat->exit_code, 0) << socat->err;
  EXPECT_TRUE(leaks);
}
