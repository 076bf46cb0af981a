// libFuzzer target: a socket address as getsockname/getpeername hand it back,
// to the text the harness reports ("127.0.0.1:80", "[::1]:80", "/run/x.sock",
// "@abstract", "*"). An inet address reads back (inet_pton) as the same
// address and port; a unix name never runs past sun_path, whatever length the
// caller passes. The first byte is the length, the rest the sockaddr.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "format.hpp"

namespace {

// "host:port" with host as the family prints it: the address and port parsed back.
template <typename Addr>
void expect_round_trip(int family, const std::string& text, const Addr& addr, std::uint16_t port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos) std::abort();
  std::string host = text.substr(0, colon);
  if (family == AF_INET6) {
    if (host.size() < 2 || host.front() != '[' || host.back() != ']') std::abort();
    host = host.substr(1, host.size() - 2);
  }
  Addr back{};
  if (inet_pton(family, host.c_str(), &back) != 1) std::abort();
  if (std::memcmp(&back, &addr, sizeof addr) != 0) std::abort();
  if (text.substr(colon + 1) != std::to_string(ntohs(port))) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const socklen_t len = data[0];  // up to 255: past sockaddr_un and even sockaddr_storage
  sockaddr_storage ss{};
  std::memcpy(&ss, data + 1, std::min(size - 1, sizeof ss));
  const std::string text = closecheck::detail::format_sockaddr(ss, len);

  switch (ss.ss_family) {
    case AF_INET: {
      const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
      expect_round_trip(AF_INET, text, a.sin_addr, a.sin_port);
      break;
    }
    case AF_INET6: {
      const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
      expect_round_trip(AF_INET6, text, a.sin6_addr, a.sin6_port);
      break;
    }
    case AF_UNIX: {
      constexpr std::size_t path_max = sizeof(sockaddr_un::sun_path);
      if (len <= offsetof(sockaddr_un, sun_path)) {
        if (text != "*") std::abort();
      } else if (reinterpret_cast<const sockaddr_un&>(ss).sun_path[0] == '\0') {
        if (text.empty() || text[0] != '@' || text.size() > path_max) std::abort();
      } else if (text.size() > path_max || text.find('\0') != std::string::npos) {
        std::abort();
      }
      break;
    }
    default:
      if (text.empty()) std::abort();
  }
  return 0;
}
