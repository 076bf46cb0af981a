#include "fetch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace {
int connect_to(unsigned short port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    throw std::runtime_error("connect failed");
  }
  return fd;
}

std::string exchange(int fd, const std::string& request) {
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string reply;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') reply += c;
  return reply;
}
}  // namespace

std::string fetch_line(unsigned short port, const std::string& request) {
  int fd = connect_to(port);
  auto reply = exchange(fd, request);
  close(fd);
  return reply;
}

std::string fetch_line_leaky(unsigned short port, const std::string& request) {
  int fd = connect_to(port);
  auto reply = exchange(fd, request);
  if (!reply.empty()) close(fd);  // the bug: an empty reply returns early
  return reply;
}
