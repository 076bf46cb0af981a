// Links in place of GTest::gtest_main: the same tests, each checked for leaked fds.
#include <csignal>

#include "closecheck/gtest.hpp"

int main(int argc, char** argv) {
  // SIGPIPE never kills a test: writing to a dead peer (a raw write, OpenSSL's
  // socket BIO) fails with EPIPE instead, which the test can see and assert.
  std::signal(SIGPIPE, SIG_IGN);
  ::testing::InitGoogleTest(&argc, argv);
  if (!closecheck::install_listener(&argc, argv)) return 2;
  return RUN_ALL_TESTS();
}
