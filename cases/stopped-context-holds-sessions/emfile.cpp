// stopped-context-holds-sessions: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "scenario.hpp"

using namespace stopped_context;
using namespace fixtures::fault;
using namespace std::chrono_literals;

namespace {

class Probe : public ServerProbe<Server> {
 public:
  std::size_t accepted() override { return server_.sessions(); }  // every client here stays connected
  void warm() override {
    served_client(server_);
    closecheck::eventually([&] { return server_.sessions() == 0; });
  }
};

}  // namespace

// Clients that stay connected exhaust RLIMIT_NOFILE in a forked child,
// running server. The shared server backs off 50 ms on a failed accept (a
// bounded count per second, no busy loop); when the first clients close, the
// running server closes their sessions at EOF in both variants (the bug needs
// a stop), and the clients that waited in the backlog are answered.
TEST(StoppedServerFault, RecoversFromEmfileWithoutSpinning) {
  EmfileRecovery<>{
      .server = [] { return std::make_unique<Probe>(); },
      .connect = [](std::uint16_t port, bool) {
        auto c = fixtures::connect_tcp("127.0.0.1", port);
        fixtures::send_all(c.get(), "hello\n");
        return c;
      },
      .served = [](fixtures::UniqueFd& c, std::size_t) {
        EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), "ok: hello\n");
      },
      // FIN (the default release): the running server ends these sessions.
      .answered = [](fixtures::UniqueFd& c, std::size_t) {
        auto answer = fixtures::read_until(c.get(), '\n', 10s);
        EXPECT_EQ(answer, "ok: hello\n") << "answered once fds were free";
        return answer == "ok: hello\n";
      },
      .counts_open = true,
  }.run();
}
