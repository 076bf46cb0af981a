// per-loop-client-leak with a server not written here: Debian's nginx, started
// for these tests by the CTest fixture (closecheck-nginx start, see
// CMakeLists.txt), which writes its port to NGINX_DIR/port.
#include <gtest/gtest.h>

#include <fstream>

#include "closecheck/gtest.hpp"
#include "scenario.hpp"

using namespace per_loop_client_leak;

namespace {
std::uint16_t nginx_port() {
  std::ifstream in(NGINX_DIR "/port");
  int port = 0;
  in >> port;
  return static_cast<std::uint16_t>(port);
}
}  // namespace

TEST(PerLoopClientLeakInterop, NginxGrowsOneLoopPerIteration) {
  auto port = nginx_port();
  ASSERT_NE(port, 0) << "no nginx: ctest starts it (fixture per-loop-client-leak/nginx/start), or run "
                        "closecheck-nginx start " NGINX_DIR;
  constexpr std::size_t n = 20;
  auto leaks = closecheck::Leaks(
      expected_after(n), [&] { iterations(n, {.port = port}, "hello from nginx\n"); });  // the registry owns them
  EXPECT_TRUE(leaks);
  EXPECT_EQ(registered_loops(), broken ? n : 0u);
  clear_registry();
}

TEST(PerLoopClientLeakInterop, NginxNotFoundIsAnAnswerNotAnError) {
  auto port = nginx_port();
  ASSERT_NE(port, 0);
  auto leaks = closecheck::Leaks(expected_after(1), [&] {
    auto response = fetch_once({.port = port, .target = "/missing"});
    EXPECT_EQ(response.status, 404u);
  });
  EXPECT_TRUE(leaks);
  clear_registry();
}
