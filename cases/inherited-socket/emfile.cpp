// inherited-socket: recovery from EMFILE (label fault).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace inherited_socket;
using namespace fixtures::fault;
using namespace std::chrono_literals;

namespace {

class Probe : public LimitedServer {
 public:
  Probe() : server_(helpers_, {.on_accept_error = [this](const error_code&) { ++errors_; }}) {}
  std::uint16_t port() override { return server_.endpoint().port(); }
  std::size_t accepted() override { return server_.accepted() - 1; }  // not the warm-up's
  std::size_t accept_errors() override { return errors_; }
  void warm_up() override {
    auto client = fixtures::connect_tcp("127.0.0.1", server_.endpoint().port());
    fixtures::send_all(client.get(), "ping\n");
    (void)fixtures::read_until(client.get(), '\n', 10s);
    // A spawn that fails, as one will at EMFILE: its PATH search and error
    // path run once while fds are free (UBSan's first type checks need a pipe).
    Server failing(helpers_, {.helper = {"closecheck-no-such-helper"}});
    auto asks = fixtures::connect_tcp("127.0.0.1", failing.endpoint().port());
    fixtures::send_all(asks.get(), "spawn\n");
    (void)fixtures::read_to_eof(asks.get(), 10s);
  }

 private:
  std::atomic<std::size_t> errors_{0};
  Helpers helpers_;
  Server server_;
};

}  // namespace

// Clients that stay connected (each after a ping) exhaust RLIMIT_NOFILE in a
// forked child. The shared server backs off 50 ms on a failed accept (a
// bounded count per second, not a busy loop). A spawn then fails with a clear
// error; as the first clients close, their fds are free and the waiting
// clients are answered. The same in both variants: no helper starts, and a
// helper's copies would not count against the server's own limit anyway.
TEST(InheritedSocketFault, RecoversFromEmfileWithoutSpinning) {
  constexpr int headroom = 10, waiting = 3;
  FdLimitedServer child([] { return std::make_unique<Probe>(); }, headroom);
  auto clients = child.fill([](std::uint16_t port) {
    auto c = fixtures::connect_tcp("127.0.0.1", port);
    fixtures::send_all(c.get(), "ping\n");
    return c;
  }, waiting, 3 * headroom);

  auto served = expect_backs_off(child, clients.size(), headroom);  // the first ones
  ASSERT_LT(served, clients.size());
  for (std::size_t i = 0; i < served; ++i) EXPECT_EQ(fixtures::read_until(clients[i].get(), '\n', 10s), "pong\n");
  // Out of fds, the helper cannot start: a clear error and a close, which
  // frees one fd, so the first waiting client is answered.
  fixtures::send_all(clients[0].get(), "spawn\n");
  EXPECT_EQ(fixtures::read_to_eof(clients[0].get(), 10s), "error: pipe2: Too many open files\n");
  EXPECT_EQ(fixtures::read_until(clients[served].get(), '\n', 10s), "pong\n");
  for (std::size_t i = 0; i < served; ++i) clients[i].reset();  // FIN: their sessions end
  for (std::size_t i = served + 1; i < clients.size(); ++i)
    EXPECT_EQ(fixtures::read_until(clients[i].get(), '\n', 10s), "pong\n") << "answered once fds were free";
  EXPECT_EQ(child.counts().accepted, clients.size());
  clients.clear();
  EXPECT_EQ(child.stop(), 0);
}
