// beast-ws-ssl-teardown: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <stdexcept>

#include "closecheck/eventually.hpp"
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
  // One session end to end while descriptors are free, and its end on the
  // server's side: the limit counts the descriptors open once it is over.
  // The server's teardown trails the client's close(); counted while it ran,
  // its socket (and UBSan's pipe for a type it meets there) would free a
  // number under the limit later, and let more clients in than the headroom.
  void warm() override {
    Client client;
    echo_then_close(client, server_.port());
    if (!closecheck::eventually([this] { return server_.closed_sessions() == 1; }, {.settle = std::chrono::seconds(10)}))
      throw std::runtime_error("the warm-up session did not end on the server's side");
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
