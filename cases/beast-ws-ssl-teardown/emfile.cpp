// beast-ws-ssl-teardown: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include <future>
#include <memory>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "scenario.hpp"

using namespace beast_ws_ssl_teardown;
using namespace std::chrono_literals;
using fixtures::fault::EmfileRecovery;
using fixtures::fault::FdLimitedServer;
using fixtures::fault::ServerProbe;

namespace {

// A server that keeps its closed sessions (a registry of connections) and so
// relies on Beast's teardown alone to close their sockets.
class Probe : public ServerProbe<Server> {
 public:
  Probe() : ServerProbe(Server::Behaviour::keep_closed) {}
  void warm() override {
    Client client;
    echo_then_close(client, server_.port());
  }
};

// A client connecting (TCP, TLS, WebSocket) on a thread of its own: one that
// waits in the backlog connects once the server accepts it, if ever.
struct Connecting {
  std::unique_ptr<Client> client;
  std::future<error_code> connected;
};

}  // namespace

// Clients that stay connected exhaust the server's RLIMIT_NOFILE (in a forked
// child); the server backs off (50 ms between accepts). Then each closes its
// WebSocket. Fixed: the server's teardown closes each session's socket and
// the clients waiting in the backlog connect. Broken: the teardown leaves
// every closed session's socket open, the server stays out of descriptors,
// and the waiting clients' TLS handshakes get no answer.
TEST(BeastWsSslTeardownFault, RecoversFromEmfileWithoutSpinning) {
  EmfileRecovery<Connecting>{
      .server = [] { return std::make_unique<Probe>(); },
      .connect = [](std::uint16_t port, bool waits) {
        // A client that turns out to wait in the backlog gives up after 2 x 3 s.
        auto client = std::make_unique<Client>(!waits ? 3s : broken ? 300ms : 10s);
        auto connected = std::async(std::launch::async, [c = client.get(), port] { return c->connect(port); });
        return Connecting{std::move(client), std::move(connected)};
      },
      .served = [](Connecting& c, std::size_t) { ASSERT_FALSE(c.connected.get()); },
      .release = [](FdLimitedServer&, std::vector<Connecting>& served, std::vector<Connecting>&) {
        for (auto& c : served) EXPECT_FALSE(c.client->close());
      },
      .answered = [](Connecting& c, std::size_t) { return !c.connected.get(); },
      .recovers = !broken,
  }.run();
}
