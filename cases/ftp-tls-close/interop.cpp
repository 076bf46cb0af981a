// ftp-tls-close with a client not written here: Debian's curl as the FTPS
// client (explicit TLS: AUTH TLS, then PBSZ 0 / PROT P for the data), verifying
// the server against the test CA.
#include <gtest/gtest.h>

#include <csignal>

#include "closecheck/gtest.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace ftp_tls_close;
using ftp_tls::Server;

namespace {
std::vector<std::string> curl(const Server& server, std::vector<std::string> args) {
  std::vector<std::string> argv{"curl", "--silent", "--show-error", "--ssl-reqd", "--cacert",
                                CLOSECHECK_TEST_CA, "--user", "user:pass"};
  for (auto& a : args) {
    if (a.starts_with("/")) a = "ftp://" + server.address() + a;
    argv.push_back(std::move(a));
  }
  return argv;
}
}  // namespace

// curl lists and downloads, then quits; the server stops afterwards: clean in
// both variants (each connection ended itself).
TEST(FtpTlsCloseInterop, CurlListsAndDownloads) {
  Site site;
  Server server({.root = site.root()});
  auto out = site.root() / "sub";
  auto done = fixtures::Process::run(
      curl(server, {"/", "-o", out / "list.txt", "/big.bin", "-o", out / "big.out"}), "",
      std::chrono::seconds(30));
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_NE(site.read("sub/list.txt").find(" big.bin\r\n"), std::string::npos);
  EXPECT_TRUE(site.read("sub/big.out") == pattern(Site::big_size));
  EXPECT_EQ(server.stats().transfers_done, 2u);
  EXPECT_TRUE(server.wait_idle());
  EXPECT_TRUE(closecheck::NoLeaks([&] { server.stop(); }));
}

// curl is in the middle of a rate-limited download when the server stops.
// Broken: the server's side of curl's control and data connections stays open
// (ESTABLISHED, curl as the peer), owned by nobody. Fixed: nothing.
TEST(FtpTlsCloseInterop, CurlConnectedWhenTheServerStops) {
  Site site;
  Server server({.root = site.root()});
  fixtures::Process curl_process(curl(server, {"--limit-rate", "256K", "/huge.bin", "-o", "/dev/null"}));
  ASSERT_TRUE(server.wait_for([](const ftp_tls::ServerStats& s) { return s.transfers_started == 1; },
                              std::chrono::seconds(30)));
  auto verdict = closecheck::expect_leaks(left_open(server, "127.0.0.1:*", "127.0.0.1:*"),
                                          [&] { server.stop(); });
  EXPECT_TRUE(verdict.ok) << verdict.message;
  if (!broken) {  // curl sees the connections end and gives up by itself
    auto finished = curl_process.wait(std::chrono::seconds(30));
    ASSERT_TRUE(finished);
    EXPECT_NE(finished->exit_code, 0);
  }
}
