// stopped-context-holds-sessions: recovery from EMFILE (label fault).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <iterator>
#include <optional>
#include <thread>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace stopped_context;
using namespace fixtures::fault;
using namespace std::chrono_literals;
using closecheck::TcpState;

namespace {

class Probe : public LimitedServer {
 public:
  Probe() : server_({.on_accept_error = [this](const error_code&) { ++errors_; }}) {}
  std::uint16_t port() override { return server_.endpoint().port(); }
  std::size_t accepted() override { return server_.sessions(); }  // every client here stays connected
  std::size_t accept_errors() override { return errors_; }
  void warm_up() override {
    served_client(server_);
    closecheck::eventually([&] { return server_.sessions() == 0; });
  }

 private:
  std::atomic<std::size_t> errors_{0};
  Server server_;
};

}  // namespace

// Clients that stay connected exhaust RLIMIT_NOFILE in a forked child,
// running server. The shared server backs off 50 ms on a failed accept (a
// bounded count per second, no busy loop); when the first clients close, the
// running server closes their sessions at EOF in both variants (the bug needs
// a stop), and the clients that waited in the backlog are answered.
TEST(StoppedServerFault, RecoversFromEmfileWithoutSpinning) {
  constexpr int headroom = 10, waiting = 3;
  FdLimitedServer child([] { return std::make_unique<Probe>(); }, headroom);
  auto clients = child.fill([](std::uint16_t port) {
    auto c = fixtures::connect_tcp("127.0.0.1", port);
    fixtures::send_all(c.get(), "hello\n");
    return c;
  }, waiting, 3 * headroom);

  // The first `served` are connected sessions (a descriptor open only for a
  // moment when the limit was set may have let one more in); the rest wait.
  auto served = expect_backs_off(child, clients.size(), headroom);
  ASSERT_LT(served, clients.size());
  std::vector<fixtures::UniqueFd> first(std::make_move_iterator(clients.begin()),
                                        std::make_move_iterator(clients.begin() + served));
  clients.erase(clients.begin(), clients.begin() + served);
  for (auto& c : first) EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), "ok: hello\n");
  first.clear();  // FIN: the running server ends these sessions
  for (auto& c : clients)
    EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), "ok: hello\n") << "answered once fds were free";
  // An answer can come before the server has ended every first session at its FIN.
  EXPECT_TRUE(child.wait([&](const auto& c) { return c.accepted == clients.size(); }))
      << "the sessions open now: " << child.counts().accepted << ", not " << clients.size();
  clients.clear();
  EXPECT_EQ(child.stop(), 0);
}
