// inherited-socket: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "scenario.hpp"

using namespace inherited_socket;
using namespace fixtures::fault;
using namespace std::chrono_literals;

namespace {

class Probe : public LimitedServer {
 public:
  Probe() : server_(helpers_) {}
  std::uint16_t port() override { return server_.port(); }
  std::size_t accepted() override { return server_.accepted() - 1; }  // not the warm-up's
  std::size_t accept_errors() override { return server_.accept_errors(); }
  void warm_up() override {
    auto client = fixtures::connect_tcp("127.0.0.1", server_.port());
    fixtures::send_all(client.get(), "ping\n");
    (void)fixtures::read_until(client.get(), '\n', 10s);
    // A spawn that fails, as one will at EMFILE: its PATH search and error
    // path run once while fds are free (UBSan's first type checks need a pipe).
    Server failing(helpers_, {.helper = {"closecheck-no-such-helper"}});
    auto asks = fixtures::connect_tcp("127.0.0.1", failing.port());
    fixtures::send_all(asks.get(), "spawn\n");
    (void)fixtures::read_to_eof(asks.get(), 10s);
  }

 private:
  Helpers helpers_;
  Server server_;
};

bool pong(fixtures::UniqueFd& c) {
  auto answer = fixtures::read_until(c.get(), '\n', 10s);
  EXPECT_EQ(answer, "pong\n");
  return answer == "pong\n";
}

}  // namespace

// Clients that stay connected (each after a ping) exhaust RLIMIT_NOFILE in a
// forked child. The shared server backs off 50 ms on a failed accept (a
// bounded count per second, not a busy loop). A spawn then fails with a clear
// error; as the first clients close, their fds are free and the waiting
// clients are answered. The same in both variants: no helper starts, and a
// helper's copies would not count against the server's own limit anyway.
TEST(InheritedSocketFault, RecoversFromEmfileWithoutSpinning) {
  EmfileRecovery<>{
      .server = [] { return std::make_unique<Probe>(); },
      .connect = [](std::uint16_t port, bool) {
        auto c = fixtures::connect_tcp("127.0.0.1", port);
        fixtures::send_all(c.get(), "ping\n");
        return c;
      },
      .served = [](fixtures::UniqueFd& c, std::size_t) { pong(c); },
      .release = [](FdLimitedServer&, std::vector<fixtures::UniqueFd>& served, std::vector<fixtures::UniqueFd>& waiting) {
        // Out of fds, the helper cannot start: a clear error and a close,
        // which frees one fd, so the first waiting client is answered.
        fixtures::send_all(served[0].get(), "spawn\n");
        EXPECT_EQ(fixtures::read_to_eof(served[0].get(), 10s), "error: pipe2: Too many open files\n");
        pong(waiting[0]);
        auto answered_first = std::move(waiting[0]);
        waiting.erase(waiting.begin());
        served.clear();  // FIN: their sessions end
        served.push_back(std::move(answered_first));  // it stays connected to the end
      },
      .answered = [](fixtures::UniqueFd& c, std::size_t) { return pong(c); },
  }.run();
}
