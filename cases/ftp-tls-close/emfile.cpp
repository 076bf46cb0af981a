// ftp-tls-close: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"  // ending()
#include "fixtures/net.hpp"
#include "scenario.hpp"

using namespace ftp_tls_close;
using namespace fixtures::fault;
using namespace std::chrono_literals;
using ftp_tls::Client;
using ftp_tls::Server;

namespace {

const std::string greeting = "220 closecheck FTP server ready.\r\n";

// The FTP server in FdLimitedServer's child, answering its counters.
class Probe : public LimitedServer {
 public:
  explicit Probe(const fs::path& root) : server_({.root = root}) {}
  std::uint16_t port() override { return server_.port(); }
  std::size_t accepted() override { return server_.stats().accepted - 1; }  // not the warm-up's
  std::size_t accept_errors() override { return server_.stats().accept_errors; }
  // One whole session while descriptors are free, so that what runs lazily
  // the first time (UBSan's type cache needs a pipe) is done before the limit.
  void warm_up() override {
    auto client = Client(server_.port(), CLOSECHECK_TEST_CA, 3s);
    client.quit();
    server_.wait_idle();
  }

 private:
  Server server_;
};

}  // namespace

// Clients that stay connected exhaust RLIMIT_NOFILE (in a forked child). The
// server does not spin on accept() (a bounded count of failed accepts per
// second: it waits for a descriptor to be released); once the first clients
// quit, the clients waiting in the backlog get their 220 greeting. Both
// variants: the reactor and its accept loop are shared, the bug is in the TLS close.
TEST(FtpTlsCloseFault, RecoversFromEmfileWithoutSpinning) {
  constexpr int headroom = 10, waiting = 3;
  Site site;
  FdLimitedServer child([root = site.root()] { return std::make_unique<Probe>(root); }, headroom);
  std::vector<fixtures::UniqueFd> served, queued;
  for (int i = 0; i < 3 * headroom && queued.empty(); ++i) {
    auto client = fixtures::connect_tcp("127.0.0.1", child.port());
    ASSERT_TRUE(child.wait([&](const auto& c) { return c.accepted == served.size() + 1 || c.accept_errors > 0; }));
    if (child.counts().accept_errors > 0) queued.push_back(std::move(client));
    else served.push_back(std::move(client));
  }
  ASSERT_FALSE(queued.empty()) << "the limit was never reached";
  for (int i = 1; i < waiting; ++i) queued.push_back(fixtures::connect_tcp("127.0.0.1", child.port()));

  auto rate = child.failed_accepts(500ms);
  EXPECT_LE(rate.per_second(), 20.0) << rate.failed << " failed accepts in " << rate.window.count() << " ms";
  EXPECT_GE(child.counts().accept_errors, 1u);

  // A descriptor open only for a moment when the limit was set can have let
  // one more client in: it has its greeting already.
  auto got_in = std::partition(queued.begin(), queued.end(),
                               [](const fixtures::UniqueFd& c) { return !fixtures::wait_readable(c.get(), 0ms); });
  std::move(got_in, queued.end(), std::back_inserter(served));
  queued.erase(got_in, queued.end());
  ASSERT_FALSE(queued.empty()) << "every client got in: no descriptor exhaustion";
  EXPECT_NEAR(static_cast<int>(served.size()), headroom, 2);
  for (auto& c : served) EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), greeting);

  for (auto& c : served) {  // QUIT: each releases its descriptor
    fixtures::send_all(c.get(), "QUIT\r\n");
    EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), "221 Goodbye.\r\n");
    EXPECT_EQ(ending(c.get()), "eof");
  }
  served.clear();
  for (auto& c : queued)
    EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), greeting) << "answered once descriptors were free";
  queued.clear();
  EXPECT_EQ(child.stop(), 0);
}
