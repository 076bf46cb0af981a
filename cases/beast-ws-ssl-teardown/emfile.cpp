// beast-ws-ssl-teardown: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include <functional>
#include <future>
#include <list>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace beast_ws_ssl_teardown;
using namespace std::chrono_literals;
using closecheck::Reclaim;
using closecheck::TcpState;
using fixtures::fault::Cut;
using fixtures::fault::FdLimitedServer;
using fixtures::fault::LimitedServer;
using fixtures::fault::Proxy;
using fixtures::fault::What;

namespace {

// A server that keeps its closed sessions (a registry of connections) and so
// relies on Beast's teardown alone to close their sockets.
class Probe : public LimitedServer {
 public:
  std::uint16_t port() override { return server_.port(); }
  std::size_t accepted() override { return server_.accepted() - 1; }  // not the warm-up's
  std::size_t accept_errors() override { return server_.accept_errors(); }
  void warm_up() override {
    Client client;
    echo_then_close(client, server_.port());
  }

 private:
  Server server_{Server::Behaviour::keep_closed};
};

}  // namespace

// Clients that stay connected exhaust the server's RLIMIT_NOFILE (in a forked
// child); the server backs off (50 ms between accepts). Then each closes its
// WebSocket. Fixed: the server's teardown closes each session's socket and
// the clients waiting in the backlog connect. Broken: the teardown leaves
// every closed session's socket open, the server stays out of descriptors,
// and the waiting clients' TLS handshakes get no answer.
TEST(BeastWsSslTeardownFault, RecoversFromEmfileWithoutSpinning) {
  constexpr int headroom = 10, waiting = 3;
  FdLimitedServer child([] { return std::make_unique<Probe>(); }, headroom);
  std::list<Client> served, queued;
  std::list<std::future<error_code>> connects;
  const auto port = child.port();
  // A client that turns out to wait in the backlog gives up after 2 x 3 s.
  for (int i = 0; i < 3 * headroom && connects.empty(); ++i) {
    auto* client = &served.emplace_back(3s);
    auto connect = std::async(std::launch::async, [client, port] { return client->connect(port); });
    ASSERT_TRUE(child.wait([&](const auto& c) { return c.accepted == served.size() || c.accept_errors > 0; }));
    if (child.counts().accepted == served.size()) {
      ASSERT_FALSE(connect.get());
    } else {
      queued.splice(queued.end(), served, std::prev(served.end()));
      connects.push_back(std::move(connect));
    }
  }
  ASSERT_FALSE(connects.empty()) << "the limit was never reached";
  for (int i = 1; i < waiting; ++i) {
    auto* client = &queued.emplace_back(broken ? 300ms : 10s);
    connects.push_back(std::async(std::launch::async, [client, port] { return client->connect(port); }));
  }

  expect_accept_backs_off(child);
  EXPECT_NEAR(static_cast<int>(served.size()), headroom, 2);

  const auto before = child.counts().accepted;
  for (auto& client : served) EXPECT_FALSE(client.close());
  std::size_t connected = 0;
  for (auto& connect : connects) connected += !connect.get();
  // A descriptor open only for a moment can have let one waiting client in.
  const auto let_in = before - served.size();
  EXPECT_EQ(connected, broken ? let_in : queued.size());
  EXPECT_EQ(child.counts().accepted, broken ? before : served.size() + queued.size());
  served.clear();
  queued.clear();
  EXPECT_EQ(child.stop(), 0);
}
