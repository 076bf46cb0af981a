// close-wait-server: recovery from EMFILE (label fault).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace close_wait_server;
using namespace fixtures::fault;
using namespace std::chrono_literals;

namespace {

constexpr auto hang = 300ms;  // how long a broken server's missing answer is waited for

class Probe : public LimitedServer {
 public:
  Probe() : server_({.on_accept_error = [this](const error_code&) { ++errors_; }}) {}
  std::uint16_t port() override { return server_.endpoint().port(); }
  // Every client here stays connected; the broken server also keeps the warm-up's.
  std::size_t accepted() override { return server_.sessions() - warm_; }
  std::size_t accept_errors() override { return errors_; }
  void warm_up() override {
    one_client(server_);
    warm_ = broken ? 1 : 0;
    closecheck::eventually([&] { return server_.sessions() == warm_; });
  }

 private:
  std::atomic<std::size_t> errors_{0};
  std::size_t warm_ = 0;
  Server server_;
};

}  // namespace

// Clients that stay connected exhaust RLIMIT_NOFILE (in a forked child). The
// server backs off (a bounded count of failed accepts per second, not a busy
// loop); when the first clients close, the fixed server frees their fds and
// answers the clients waiting in the backlog. The broken one keeps the
// closed clients' sockets in CLOSE_WAIT and never answers them.
TEST(CloseWaitServerFault, RecoversFromEmfileWithoutSpinning) {
  constexpr int headroom = 10, waiting = 3;
  FdLimitedServer child([] { return std::make_unique<Probe>(); }, headroom);
  std::vector<fixtures::UniqueFd> served, queued;
  for (int i = 0; i < 3 * headroom && queued.empty(); ++i) {
    auto client = fixtures::connect_tcp("127.0.0.1", child.port());
    fixtures::send_all(client.get(), "hello\n");
    ASSERT_TRUE(child.wait([&](const auto& c) { return c.accepted == served.size() + 1 || c.accept_errors > 0; }));
    if (child.counts().accept_errors > 0) queued.push_back(std::move(client));
    else served.push_back(std::move(client));
  }
  ASSERT_FALSE(queued.empty()) << "the limit was never reached";
  for (int i = 1; i < waiting; ++i) {
    queued.push_back(fixtures::connect_tcp("127.0.0.1", child.port()));
    fixtures::send_all(queued.back().get(), "hello\n");
  }

  expect_accept_backs_off(child);

  // A descriptor that was open only for a moment when the limit was set (or
  // when accept failed) can let one more client in: count it as served.
  std::erase_if(queued, [&](fixtures::UniqueFd& c) {
    if (!fixtures::wait_readable(c.get(), 0ms)) return false;
    served.push_back(std::move(c));
    return true;
  });
  ASSERT_FALSE(queued.empty()) << "every client was served: no fd exhaustion";
  EXPECT_NEAR(static_cast<int>(served.size()), headroom, 2);
  for (auto& c : served) EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), "ok: hello\n");

  auto first = served.size();
  served.clear();  // the first clients close: FIN
  for (auto& c : queued) {
    if (broken) {
      std::string got;
      EXPECT_EQ(ending(c.get(), &got, hang), "open") << "never accepted: the closed clients' fds stay in CLOSE_WAIT";
      EXPECT_EQ(got, "");
    } else {
      EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), "ok: hello\n") << "answered once fds were free";
    }
  }
  // Fixed: an answer can come before the server has ended every first session at its FIN.
  const auto open_now = broken ? first : queued.size();
  EXPECT_TRUE(child.wait([&](const auto& c) { return c.accepted == open_now; }))
      << "the sessions open now: " << child.counts().accepted << ", not " << open_now;
  queued.clear();
  EXPECT_EQ(child.stop(), 0);
}
