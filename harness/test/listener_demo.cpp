// Not a test of its own: the harness test runs it to see what a project that
// links closecheck::gtest_main gets. One test is clean, one leaks a pipe end
// (harness_test), one closes an fd twice (sites_test: the "demo:" comments
// mark the lines its report must name).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

TEST(Demo, Clean) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  close(fds[0]);
  close(fds[1]);
}

// A helper, so that the report shows a caller under the open site.
void open_pipe(int fds[2]) {
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);  // demo: leaked
}

TEST(Demo, LeaksAPipeEnd) {
  int fds[2];
  open_pipe(fds);  // demo: caller
  close(fds[1]);
}

// The pipe's read end is closed twice; the second close fails with EBADF.
TEST(Demo, ClosesTwice) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);  // demo: opened
  close(fds[1]);
  close(fds[0]);  // demo: first close
  close(fds[0]);  // demo: second close
}
