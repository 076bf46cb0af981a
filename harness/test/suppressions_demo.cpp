// Not a test of its own: suppressions_test runs it with suppressions files,
// CLOSECHECK_SUPPRESS and flags, and checks what the listener
// (closecheck::gtest_main) makes of its leaks. Each test but Known.Clean
// leaks on purpose, the way a third-party suite with a known bug would.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"

namespace {

// A TCP socket listening on 127.0.0.1, port 0 (the kernel picks).
int listening_socket() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4) != 0) {
    ADD_FAILURE() << "cannot listen on 127.0.0.1: " << strerror(errno);
    return -1;
  }
  return fd;
}

}  // namespace

TEST(Known, Clean) {
  int fd = listening_socket();
  close(fd);
}

// cpp-httplib's BindServerTest: the listening socket is never closed.
TEST(Known, LeaksAListeningSocket) { listening_socket(); }

TEST(Known, LeaksTwoListeningSockets) {
  listening_socket();
  listening_socket();
}

// The peer closes first and the accepted socket is never closed: CLOSE_WAIT.
TEST(Known, LeavesCloseWait) {
  int listener = listening_socket();
  ASSERT_GE(listener, 0);
  sockaddr_in a{};
  socklen_t len = sizeof a;
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&a), len), 0);
  int server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  ASSERT_GE(server, 0);
  close(listener);
  close(client);
  EXPECT_TRUE(closecheck::eventually([&] {
    auto fd = closecheck::inspect(server);
    return fd && fd->socket && fd->socket->state == closecheck::TcpState::close_wait;
  }));
}

// Parameterized: named "Ports/Param.LeaksAPipe/0" and ".../1".
class Param : public ::testing::TestWithParam<int> {};
TEST_P(Param, LeaksAPipe) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  close(fds[1]);
}
INSTANTIATE_TEST_SUITE_P(Ports, Param, ::testing::Values(0, 1));
