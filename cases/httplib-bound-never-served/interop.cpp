// httplib-bound-never-served with a client not written here: curl.
#include <gtest/gtest.h>
#include <unistd.h>

#include "closecheck/gtest.hpp"
#include "closecheck/netns.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace httplib_bound_never_served;

TEST(BoundNeverServedInterop, CurlGetsAFileFromAServedServer) {
  Root root;
  FileServer server({.root = root.path()});
  auto done = fixtures::Process::run(
      {"curl", "-sS", "--max-time", "10", "http://" + server.address() + "/hello.txt"}, "", 20s);
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_EQ(done.out, "hello\n");
}

// curl against the port of a server that bound and gave up: broken, the
// handshake completes and curl times out waiting for an answer (exit 28);
// fixed, the connection is refused (exit 7).
TEST(BoundNeverServedInterop, CurlOnTheAbandonedPort) {
  std::string why;  // a refused connect proves the port free only if nobody else takes it
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  std::vector<int> ports;
  auto leaks = closecheck::Leaks(expected_after(1, ports), [&] { ports.push_back(failed_start()); });
  ASSERT_TRUE(leaks);
  auto url = "http://127.0.0.1:" + std::to_string(ports.at(0)) + "/hello.txt";
  auto done = fixtures::Process::run({"curl", "-sS", "--max-time", "1", url}, "", 20s);
  EXPECT_EQ(done.exit_code, broken ? 28 : 7) << done.err;
  for (const auto& fd : leaks.leaked) ::close(fd.number);  // reclaim: nothing owns it
}
