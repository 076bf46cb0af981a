// asio-ssl-shutdown-hang: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include <memory>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "scenario.hpp"

using namespace asio_ssl_shutdown_hang;
using fixtures::fault::EmfileRecovery;
using fixtures::fault::FdLimitedServer;
using fixtures::fault::ServerProbe;
using namespace std::chrono_literals;
namespace ssl_error = boost::asio::ssl::error;

namespace {

constexpr auto hang = 300ms;  // how long a broken server's missing answer is waited for

class Probe : public ServerProbe<Server> {
 public:
  std::shared_ptr<void> pause() override { return server_.pause(); }
  // One session end to end while descriptors are free; it is closed either
  // way (its peer answers the close_notify).
  void warm() override {
    // UBSan checks an error category's type the first time it meets it, and
    // needs a pipe for that: meet the one the peers' closes bring (their
    // reads end with stream_truncated), and the pause's types, while
    // descriptors are free.
    (void)boost::system::error_code(ssl_error::stream_truncated).failed();
    (void)server_.pause();
    Peer peer(server_);
    peer.exchange("quit\n");
    peer.read_close_notify();
    peer.answer_close_notify();
    server_.wait_for([](const Stats& s) { return s.shutdowns_done.size() == 1; });
  }
};

// A connection, and once the server has accepted it, the TLS peer on it.
struct Connection {
  fixtures::UniqueFd fd;
  std::unique_ptr<Peer> peer;
};

}  // namespace

// Peers that stay connected exhaust RLIMIT_NOFILE (in a forked child); the
// server backs off (a bounded count of failed accepts per second: 50 ms
// between tries). Then each peer says "quit": the server answers, starts its
// TLS shutdown, and the peer reads the close_notify and closes without one
// (Icinga 2 #7203: accept() failed with error code 24 behind 16,000
// CLOSE_WAIT sockets). Fixed: the deadlines free the descriptors and the
// waiting peers are served. Broken: the stuck shutdowns keep every one of them
// in CLOSE_WAIT, and the waiting peers' handshakes get no answer.
TEST(AsioSslShutdownHangFault, RecoversFromEmfileWithoutSpinning) {
  EmfileRecovery<Connection>{
      .server = [] { return std::make_unique<Probe>(); },
      .connect = [](std::uint16_t port, bool) { return Connection{fixtures::connect_tcp("127.0.0.1", port), {}}; },
      .served = [](Connection& c, std::size_t) { c.peer = std::make_unique<Peer>(std::move(c.fd)); },
      .release = [](FdLimitedServer& child, std::vector<Connection>& served, std::vector<Connection>&) {
        std::vector<std::string> leaving;
        for (auto& c : served) {
          EXPECT_EQ(c.peer->exchange("quit\n"), "ok: quit\n");
          ASSERT_TRUE(c.peer->close_notify_arrived());
          EXPECT_TRUE(c.peer->read_close_notify());
          leaving.push_back(c.peer->address());
        }
        close_reaches_a_busy_server([&] { return child.pause(); }, "127.0.0.1:" + std::to_string(child.port()), [&] {
          for (auto& c : served) c.peer->close_tcp();  // FIN, no close_notify
        }, leaving);
        served.clear();
      },
      .answered = [](Connection& c, std::size_t) {
        // A TLS handshake on the waiting connection: served once a descriptor is free.
        try {
          Peer peer(std::move(c.fd), broken ? hang : 10s);
          return true;
        } catch (const std::exception& e) {
          EXPECT_TRUE(broken) << "not served: " << e.what();
          return false;
        }
      },
      .recovers = !broken,
  }.run();
}
