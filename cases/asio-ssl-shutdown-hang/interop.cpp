// asio-ssl-shutdown-hang with a peer not written here: Debian's
// `openssl s_client`, verifying the server against the test CA.
#include <gtest/gtest.h>

#include <unistd.h>

#include <csignal>
#include <fstream>

#include "closecheck/gtest.hpp"
#include "closecheck/sweep.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace asio_ssl_shutdown_hang;

namespace {
// s_client waits for a line on stdin before it starts, so that its
// connection, and the server's side of it, are opened inside the checked block.
fixtures::Process s_client(const Server& server) {
  return fixtures::Process({"sh", "-c", "read go && exec \"$@\"", "sh", "openssl", "s_client", "-connect",
                            server.address(), "-CAfile", CLOSECHECK_TEST_CA, "-verify_return_error",
                            "-quiet"});  // -quiet: also -ign_eof, stdin's end is not the end
}

void start_and_exchange(fixtures::Process& client) {
  ASSERT_EQ(write(client.stdin_fd(), "go\nhello\n", 9), 9);
  EXPECT_EQ(fixtures::read_until(client.stdout_fd(), '\n', std::chrono::seconds(20)), "ok: hello\n");
}

// 'S', 'R', 'T' (stopped), ... from /proc/PID/stat. A stopped process that a
// tracer follows (this suite under `closecheck run`, or gdb) reads 't'.
char process_state(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), {});
  auto close = stat.rfind(')');
  return close == std::string::npos || close + 2 >= stat.size() ? '?' : stat[close + 2];
}
// Whether the peer's end of the server's one connection has bytes (the
// close_notify) queued and unread: ss's Recv-Q, read from the kernel.
bool close_notify_queued_at_peer(const Server& server) {
  for (const auto& s : closecheck::sweep(closecheck::state_bit(TcpState::established) |
                                         closecheck::state_bit(TcpState::close_wait)))
    if (s.peer == server.address() && s.recv_q > 0) return true;
  return false;
}
}  // namespace

// s_client is frozen (SIGSTOP, as a hung peer would be) when the server ends
// the session; then it is killed, with the close_notify unread. Broken: the
// server's socket is ESTABLISHED while s_client is frozen, then CLOSE (RST)
// once it is killed, and still open. Fixed: closed at the deadline.
TEST(AsioSslShutdownHangInterop, FrozenSClientThenKilled) {
  Server server;
  auto client = s_client(server);
  ::testing::AssertionResult frozen = ::testing::AssertionFailure() << "not run";
  auto killed = closecheck::Leaks(stuck(server, TcpState::close), [&] {
    frozen = closecheck::Leaks(stuck(server, TcpState::established), [&] {
      start_and_exchange(client);
      client.signal(SIGSTOP);
      ASSERT_TRUE(closecheck::eventually([&] {
        auto state = process_state(client.pid());
        return state == 'T' || state == 't';
      }));
      server.disconnect_all();
      ASSERT_TRUE(server.wait_for([](const Stats& s) { return s.shutdowns_started == 1; }));
      // Killed before the close_notify reaches it, s_client would close with
      // nothing unread: a FIN, not the RST this test is about.
      ASSERT_TRUE(closecheck::eventually([&] { return close_notify_queued_at_peer(server); }));
      if (!broken) ASSERT_TRUE(shutdowns_end(server, 1, std::chrono::seconds(10)));
    });
    close_reaches_a_busy_server(server, [&] {
      client.signal(SIGKILL);
      ASSERT_TRUE(client.wait(std::chrono::seconds(10)));
    });
  });
  EXPECT_TRUE(frozen);
  EXPECT_TRUE(killed);
  EXPECT_EQ(shutdowns_end(server, 1, std::chrono::milliseconds(750)), !broken);
}

// s_client running: it answers the close_notify with its own and exits.
// Both variants close.
TEST(AsioSslShutdownHangInterop, SClientAnswersCloseNotify) {
  Server server({.shutdown_timeout = std::chrono::seconds(30)});  // the peer, not the deadline, ends it
  auto client = s_client(server);
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    start_and_exchange(client);
    server.disconnect_all();
    ASSERT_TRUE(shutdowns_end(server, 1, std::chrono::seconds(10)));
  }));
  auto done = client.wait(std::chrono::seconds(10));
  ASSERT_TRUE(done);
  EXPECT_EQ(done->exit_code, 0) << done->err;
  auto stats = server.stats();
  ASSERT_EQ(stats.shutdowns_done.size(), 1u);
  EXPECT_EQ(stats.shutdowns_done[0], boost::asio::error::operation_aborted);  // see test.cpp's PeerAnswersCloseNotify
}
