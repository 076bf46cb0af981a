// asio-ssl-shutdown-hang: recovery from EMFILE (label fault).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <optional>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace asio_ssl_shutdown_hang;
using fixtures::fault::Cut;
using fixtures::fault::ending;
using fixtures::fault::FdLimitedServer;
using fixtures::fault::LimitedServer;
using fixtures::fault::Proxy;
using fixtures::fault::What;
using namespace std::chrono_literals;
using closecheck::Reclaim;
namespace ssl_error = boost::asio::ssl::error;

namespace {

constexpr auto hang = 300ms;  // how long a broken server's missing answer is waited for

class Probe : public LimitedServer {
 public:
  std::uint16_t port() override { return server_.port(); }
  std::size_t accepted() override { return server_.stats().accepted - 1; }  // not the warm-up's
  std::size_t accept_errors() override { return server_.stats().accept_errors; }
  std::shared_ptr<void> pause() override { return server_.pause(); }
  // One session end to end while descriptors are free; it is closed either
  // way (its peer answers the close_notify).
  void warm_up() override {
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

 private:
  Server server_;
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
  constexpr int headroom = 10, waiting = 3;
  FdLimitedServer child([] { return std::make_unique<Probe>(); }, headroom);
  std::vector<std::unique_ptr<Peer>> served;
  std::vector<fixtures::UniqueFd> queued;
  for (int i = 0; i < 3 * headroom && queued.empty(); ++i) {
    auto client = fixtures::connect_tcp("127.0.0.1", child.port());
    ASSERT_TRUE(child.wait([&](const auto& c) { return c.accepted == served.size() + 1 || c.accept_errors > 0; }));
    if (child.counts().accepted == served.size() + 1) served.push_back(std::make_unique<Peer>(std::move(client)));
    else queued.push_back(std::move(client));
  }
  ASSERT_FALSE(queued.empty()) << "the limit was never reached";
  for (int i = 1; i < waiting; ++i) queued.push_back(fixtures::connect_tcp("127.0.0.1", child.port()));

  expect_accept_backs_off(child);
  EXPECT_NEAR(static_cast<int>(served.size()), headroom, 2);

  // A descriptor open only for a moment (when the limit was set, or when an
  // accept failed) can have let a waiting peer in: it will be answered in both.
  const auto before = child.counts().accepted, let_in = before - served.size();
  std::vector<std::string> leaving;
  for (auto& peer : served) {
    EXPECT_EQ(peer->exchange("quit\n"), "ok: quit\n");
    ASSERT_TRUE(peer->close_notify_arrived());
    EXPECT_TRUE(peer->read_close_notify());
    leaving.push_back(peer->address());
  }
  close_reaches_a_busy_server([&] { return child.pause(); }, "127.0.0.1:" + std::to_string(child.port()), [&] {
    for (auto& peer : served) peer->close_tcp();  // FIN, no close_notify
  }, leaving);
  served.clear();
  std::size_t answered = 0;
  for (auto& c : queued) {
    // A TLS handshake on the waiting connection: served once a descriptor is free.
    try {
      Peer peer(std::move(c), broken ? hang : 10s);
      ++answered;
    } catch (const std::exception& e) {
      EXPECT_TRUE(broken) << "not served: " << e.what();
    }
  }
  EXPECT_EQ(answered, broken ? let_in : queued.size());
  EXPECT_EQ(child.counts().accepted, broken ? before : before - let_in + queued.size()) << "no peer accepted twice";
  queued.clear();
  EXPECT_EQ(child.stop(), 0);
}
