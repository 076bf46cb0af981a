// Links in place of GTest::gtest_main: the same tests, each checked for leaked fds.
#include "closecheck/gtest.hpp"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (!closecheck::install_listener(&argc, argv)) return 2;
  return RUN_ALL_TESTS();
}
