// close-wait-server: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace close_wait_server;
using namespace fixtures::fault;
using namespace std::chrono_literals;

namespace {

constexpr auto hang = 300ms;  // how long a broken server's missing answer is waited for

class Probe : public ServerProbe<Server> {
 public:
  // Every client here stays connected; the broken server also keeps the warm-up's.
  std::size_t accepted() override { return server_.sessions() - (broken ? 1 : 0); }
  void warm() override {
    one_client(server_);
    closecheck::eventually([&] { return server_.sessions() == (broken ? 1u : 0u); });
  }
};

}  // namespace

// Clients that stay connected exhaust RLIMIT_NOFILE (in a forked child). The
// server backs off (a bounded count of failed accepts per second, not a busy
// loop); when the first clients close, the fixed server frees their fds and
// answers the clients waiting in the backlog. The broken one keeps the
// closed clients' sockets in CLOSE_WAIT and never answers them.
TEST(CloseWaitServerFault, RecoversFromEmfileWithoutSpinning) {
  EmfileRecovery<>{
      .server = [] { return std::make_unique<Probe>(); },
      .connect = [](std::uint16_t port, bool) {
        auto client = fixtures::connect_tcp("127.0.0.1", port);
        fixtures::send_all(client.get(), "hello\n");
        return client;
      },
      .served = [](fixtures::UniqueFd& c, std::size_t) {
        EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), "ok: hello\n");
      },
      .answered = [](fixtures::UniqueFd& c, std::size_t) {
        if (!broken) {
          auto answer = fixtures::read_until(c.get(), '\n', 10s);
          EXPECT_EQ(answer, "ok: hello\n") << "answered once fds were free";
          return answer == "ok: hello\n";
        }
        std::string got;
        EXPECT_EQ(ending(c.get(), &got, hang), "open") << "never accepted: the closed clients' fds stay in CLOSE_WAIT";
        EXPECT_EQ(got, "");
        return false;
      },
      .recovers = !broken,
      .counts_open = true,
  }.run();
}
