// Not a test of its own: the harness test runs it to see what a project that
// links closecheck::gtest_main gets. One test is clean, one leaks a pipe end.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

TEST(Demo, Clean) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  close(fds[0]);
  close(fds[1]);
}

TEST(Demo, LeaksAPipeEnd) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  close(fds[1]);
}
