#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <closecheck/gtest.hpp>
#include <thread>

#include "fetch.hpp"

// A one-connection server: answers `reply` to the first line, then closes.
class OneShotServer {
 public:
  explicit OneShotServer(std::string reply) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(listener_, 1);
    socklen_t len = sizeof a;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, reply = std::move(reply)] {
      int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      char c;
      while (read(fd, &c, 1) == 1 && c != '\n') {
      }
      send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      close(fd);
    });
  }
  ~OneShotServer() {
    thread_.join();
    close(listener_);
  }
  unsigned short port() const { return port_; }

 private:
  int listener_;
  unsigned short port_;
  std::thread thread_;
};

// Checked automatically: this test fails if fetch_line leaves anything open.
TEST(Fetch, ReturnsTheReplyLine) {
  OneShotServer server("pong\n");
  EXPECT_EQ(fetch_line(server.port(), "ping\n"), "pong");
}

// A test that documents a known leak: exactly one TCP socket, in CLOSE_WAIT
// because the server closed first. closecheck then closes it (reclaims it),
// so the automatic check after the test finds nothing.
TEST(Fetch, LeakyVersionLeaksOneSocketOnAnEmptyReply) {
  OneShotServer server("\n");
  EXPECT_TRUE(closecheck::Leaks(
      {{1, closecheck::tcp(closecheck::TcpState::close_wait)
               .peer("127.0.0.1:" + std::to_string(server.port()))}},
      [&] { fetch_line_leaky(server.port(), "ping\n"); }, closecheck::Reclaim::close));
}
