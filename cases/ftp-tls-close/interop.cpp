// ftp-tls-close with a client not written here: Debian's curl as the FTPS
// client (explicit TLS: AUTH TLS, then PBSZ 0 / PROT P for the data), verifying
// the server against the test CA.
#include <gtest/gtest.h>

#include <unistd.h>

#include "closecheck/gtest.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace ftp_tls_close;
using ftp_tls::Server;

namespace {
std::vector<std::string> curl(std::vector<std::string> args) {
  std::vector<std::string> argv{"curl", "--silent", "--show-error", "--ssl-reqd", "--cacert",
                                CLOSECHECK_TEST_CA, "--user", "user:pass"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}
std::string url(const Server& server, const std::string& path) { return "ftp://" + server.address() + path; }
}  // namespace

// curl lists and downloads, then quits; the server stops afterwards: clean in
// both variants (each connection ended itself).
TEST(FtpTlsCloseInterop, CurlListsAndDownloads) {
  Site site;
  Server server({.root = site.root()});
  auto out = site.root() / "sub";
  auto done = fixtures::Process::run(
      curl({url(server, "/"), "-o", out / "list.txt", url(server, "/big.bin"), "-o", out / "big.out"}), "",
      std::chrono::seconds(30));
  EXPECT_EQ(done.exit_code, 0) << done.err;
  EXPECT_NE(site.read("sub/list.txt").find(" big.bin\n"), std::string::npos)  // ASCII mode: curl makes CRLF LF
      << site.read("sub/list.txt");
  EXPECT_TRUE(site.read("sub/big.out") == pattern(Site::big_size));
  EXPECT_TRUE(server.wait_for([](const ftp_tls::ServerStats& s) { return s.transfers_done == 2; }));
  EXPECT_TRUE(server.wait_idle());
  EXPECT_TRUE(closecheck::NoLeaks([&] { server.stop(); }));
}

// curl is in the middle of a rate-limited download when the server stops.
// Broken: the server's side of curl's control and data connections stays open
// (ESTABLISHED, curl as the peer), owned by nobody. Fixed: nothing.
// curl waits for a line on stdin before it starts, so that its connections,
// and the server's side of them, are opened inside the checked block.
TEST(FtpTlsCloseInterop, CurlConnectedWhenTheServerStops) {
  Site site;
  Server server({.root = site.root()});
  auto argv = curl({"--limit-rate", "256K", url(server, "/huge.bin"), "-o", "/dev/null"});
  argv.insert(argv.begin(), {"sh", "-c", "read go && exec \"$@\"", "sh"});
  fixtures::Process curl_process(argv);
  ClientAddresses curl_side;  // curl's ports are not known here: any
  auto leaks = closecheck::Leaks(left_open(server, curl_side, true), [&] {
    ASSERT_EQ(write(curl_process.stdin_fd(), "go\n", 3), 3);
    ASSERT_TRUE(server.wait_for([](const ftp_tls::ServerStats& s) { return s.transfers_started == 1; },
                                std::chrono::seconds(30)));
    server.stop();
  }, closecheck::Reclaim::close);  // owned by nobody
  EXPECT_TRUE(leaks);
  // curl is killed with the Process; it would take seconds to read what is buffered first.
}
