// What a leak report looks like in a project of your own: two tests that
// leak on purpose (an accepted socket the server never closes, a pipe end),
// so not part of `ctest`. Run ./leaky_test: closecheck names the accept and
// pipe lines below as the open sites (harness/test/package_test.cmake checks
// that it does, using the "site:" comments).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <closecheck/gtest.hpp>

TEST(Leaky, ServerNeverClosesTheAcceptedSocket) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(listen(listener, 1), 0);
  ASSERT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len), 0);
  int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  int session = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);  // site: accept
  ASSERT_GE(session, 0);
  close(client);  // the client hangs up; the session is never closed: CLOSE_WAIT
  close(listener);
}

TEST(Leaky, KeepsAPipeEnd) {
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);  // site: pipe
  close(fds[1]);
}
