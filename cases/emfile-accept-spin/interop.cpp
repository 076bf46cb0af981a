// emfile-accept-spin with a client not written here: socat connects while the
// server's table is full, sends a line and half-closes (-t 30: it then waits
// up to 30 s for the server's side). Reserve: socat is closed at once with no
// answer. Broken and back-off: it waits, and is answered once descriptors free up.
#include <gtest/gtest.h>
#include <unistd.h>

#include "closecheck/gtest.hpp"
#include "scenario.hpp"

using namespace emfile_accept_spin;

TEST(EmfileAcceptSpinInterop, SocatConnectsWhileFull) {
  FullServer server;
  fixtures::Process socat({"socat", "-t", "30", "-", "TCP:127.0.0.1:" + std::to_string(server.port())});
  ASSERT_EQ(::write(socat.stdin_fd(), "hello\n", 6), 6);
  socat.close_stdin();
  ASSERT_TRUE(server.failed_at_least(1));
  if (reserve) {
    auto done = socat.wait(10s);
    ASSERT_TRUE(done) << "socat was not closed";
    EXPECT_EQ(done->out, "");
  } else {
    EXPECT_FALSE(fixtures::wait_readable(socat.stdout_fd(), window)) << "socat was answered while full";
    server.release();
    auto done = socat.wait(20s);
    ASSERT_TRUE(done) << "socat was not answered";
    EXPECT_EQ(done->exit_code, 0) << done->err;
    EXPECT_EQ(done->out, "ok: hello\n");
  }
  EXPECT_EQ(server.finish(), 0);
}
