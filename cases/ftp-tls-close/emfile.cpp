// ftp-tls-close: recovery from EMFILE (label fault).
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
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
  Site site;
  EmfileRecovery<>{
      .server = [root = site.root()] { return std::make_unique<Probe>(root); },
      .connect = [](std::uint16_t port, bool) { return fixtures::connect_tcp("127.0.0.1", port); },
      .served = [](fixtures::UniqueFd& c, std::size_t) {
        EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), greeting);
      },
      .release = [](FdLimitedServer&, std::vector<fixtures::UniqueFd>& served, std::vector<fixtures::UniqueFd>&) {
        for (auto& c : served) {  // QUIT: each releases its descriptor
          fixtures::send_all(c.get(), "QUIT\r\n");
          EXPECT_EQ(fixtures::read_until(c.get(), '\n', 10s), "221 Goodbye.\r\n");
          EXPECT_EQ(ending(c.get()), "eof");
        }
        served.clear();
      },
      .answered = [](fixtures::UniqueFd& c, std::size_t) {
        auto line = fixtures::read_until(c.get(), '\n', 10s);
        EXPECT_EQ(line, greeting) << "answered once descriptors were free";
        return line == greeting;
      },
      // It stops polling the listener after a failed accept, until a
      // connection releases a descriptor: at most 20 failures a second, and
      // the window need see none.
      .most_per_second = 20.0,
      .fails_in_window = false,
  }.run();
}
