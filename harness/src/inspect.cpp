// Classifying one descriptor: kind, target and, for sockets, what ss shows.
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "closecheck/closecheck.hpp"
#include "closecheck/sites.hpp"
#include "format.hpp"

namespace closecheck {

std::string_view to_string(Kind k) {
  switch (k) {
    case Kind::file: return "file";
    case Kind::directory: return "directory";
    case Kind::pipe: return "pipe";
    case Kind::fifo: return "fifo";
    case Kind::socket: return "socket";
    case Kind::eventfd: return "eventfd";
    case Kind::epoll: return "epoll";
    case Kind::timerfd: return "timerfd";
    case Kind::signalfd: return "signalfd";
    case Kind::inotify: return "inotify";
    case Kind::pidfd: return "pidfd";
    case Kind::anon_inode: return "anon_inode";
    case Kind::char_device: return "chardev";
    case Kind::block_device: return "blockdev";
    case Kind::other: return "other";
  }
  return "other";
}

std::string_view to_string(TcpState s) {
  static constexpr std::array<std::string_view, 13> names = {
      "NONE",      "ESTAB",      "SYN_SENT", "SYN_RECV",   "FIN_WAIT1", "FIN_WAIT2",
      "TIME_WAIT", "CLOSE",      "CLOSE_WAIT", "LAST_ACK", "LISTEN",    "CLOSING",
      "NEW_SYN_RECV"};
  auto i = static_cast<std::size_t>(s);
  return i < names.size() ? names[i] : "UNKNOWN";
}

bool SocketInfo::is_tcp() const {
  return (family == AF_INET || family == AF_INET6) && type == SOCK_STREAM &&
         protocol == IPPROTO_TCP;
}

std::string SocketInfo::protocol_name() const {
  auto type_name = [&]() -> std::string {
    switch (type) {
      case SOCK_STREAM: return "stream";
      case SOCK_DGRAM: return "dgram";
      case SOCK_SEQPACKET: return "seqpacket";
      case SOCK_RAW: return "raw";
      default: return "type" + std::to_string(type);
    }
  };
  switch (family) {
    case AF_INET:
    case AF_INET6:
      if (protocol == IPPROTO_TCP) return "tcp";
      if (protocol == IPPROTO_UDP) return "udp";
      if (type == SOCK_RAW) return "raw";
      return "inet " + type_name();
    case AF_UNIX: return "unix " + type_name();
    case AF_NETLINK:
      switch (protocol) {
        case NETLINK_ROUTE: return "netlink route";
        case NETLINK_SOCK_DIAG: return "netlink sock_diag";
        case NETLINK_KOBJECT_UEVENT: return "netlink uevent";
        default: return "netlink " + std::to_string(protocol);
      }
    default: return "family" + std::to_string(family) + " " + type_name();
  }
}

namespace detail {

std::string format_inet(int family, const void* addr, unsigned port_network_order) {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, addr, text, sizeof text);
  auto port = std::to_string(ntohs(static_cast<uint16_t>(port_network_order)));
  return family == AF_INET6 ? "[" + std::string(text) + "]:" + port
                            : std::string(text) + ":" + port;
}

std::string format_sockaddr(const sockaddr_storage& ss, socklen_t len) {
  switch (ss.ss_family) {
    case AF_INET: {
      const auto& a = reinterpret_cast<const sockaddr_in&>(ss);
      return format_inet(AF_INET, &a.sin_addr, a.sin_port);
    }
    case AF_INET6: {
      const auto& a = reinterpret_cast<const sockaddr_in6&>(ss);
      return format_inet(AF_INET6, &a.sin6_addr, a.sin6_port);
    }
    case AF_UNIX: {
      const auto& a = reinterpret_cast<const sockaddr_un&>(ss);
      // A length past sun_path (a caller's buffer larger than sockaddr_un) reads no further.
      auto path_len = len > offsetof(sockaddr_un, sun_path) ? len - offsetof(sockaddr_un, sun_path) : 0;
      path_len = std::min(path_len, sizeof a.sun_path);
      if (path_len == 0) return "*";
      if (a.sun_path[0] == '\0') return "@" + std::string(a.sun_path + 1, path_len - 1);
      return std::string(a.sun_path, strnlen(a.sun_path, path_len));
    }
    case AF_NETLINK: {
      const auto& a = reinterpret_cast<const sockaddr_nl&>(ss);
      return "pid " + std::to_string(a.nl_pid);
    }
    default: return "*";
  }
}

}  // namespace detail

namespace {

int int_option(int fd, int level, int name) {
  int value = 0;
  socklen_t len = sizeof value;
  return getsockopt(fd, level, name, &value, &len) == 0 ? value : -1;
}

SocketInfo inspect_socket(int fd) {
  SocketInfo s;
  s.family = int_option(fd, SOL_SOCKET, SO_DOMAIN);
  s.type = int_option(fd, SOL_SOCKET, SO_TYPE);
  s.protocol = int_option(fd, SOL_SOCKET, SO_PROTOCOL);
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  s.local = getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0
                ? detail::format_sockaddr(ss, len)
                : "*";
  len = sizeof ss;
  ss = {};
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0) {
    s.peer = detail::format_sockaddr(ss, len);
    if (s.peer == "*") s.peer.clear();
  }
  if (s.is_tcp()) {
    tcp_info info{};
    socklen_t info_len = sizeof info;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len) == 0)
      s.state = static_cast<TcpState>(info.tcpi_state);
  }
  return s;
}

Kind anon_kind(std::string_view target) {
  // e.g. "anon_inode:[eventfd]", "anon_inode:inotify"
  auto name = target.substr(std::string_view("anon_inode:").size());
  if (name == "[eventfd]") return Kind::eventfd;
  if (name == "[eventpoll]") return Kind::epoll;
  if (name == "[timerfd]") return Kind::timerfd;
  if (name == "[signalfd]") return Kind::signalfd;
  if (name == "inotify") return Kind::inotify;
  if (name == "[pidfd]") return Kind::pidfd;
  return Kind::anon_inode;
}

}  // namespace

namespace detail {

Kind classify(std::string_view target, mode_t mode) {
  if (target.starts_with("anon_inode:")) return anon_kind(target);
  if (S_ISSOCK(mode)) return Kind::socket;
  if (S_ISFIFO(mode)) return target.starts_with("pipe:") ? Kind::pipe : Kind::fifo;
  if (S_ISDIR(mode)) return Kind::directory;
  if (S_ISREG(mode)) return Kind::file;
  if (S_ISCHR(mode)) return Kind::char_device;
  if (S_ISBLK(mode)) return Kind::block_device;
  return Kind::other;
}

std::optional<ino_t> socket_inode(std::string_view target) {
  constexpr std::string_view prefix = "socket:[";
  if (!target.starts_with(prefix) || !target.ends_with(']')) return std::nullopt;
  auto digits = target.substr(prefix.size(), target.size() - prefix.size() - 1);
  ino_t inode = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), inode);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return inode;
}

}  // namespace detail

std::optional<Fd> inspect(int number) {
  struct stat st{};
  if (fstat(number, &st) != 0) return std::nullopt;
  Fd fd;
  fd.number = number;
  fd.device = st.st_dev;
  fd.inode = st.st_ino;
  char link[32];
  std::snprintf(link, sizeof link, "/proc/self/fd/%d", number);
  char target[4096];
  auto n = readlink(link, target, sizeof target - 1);
  if (n >= 0) fd.target.assign(target, static_cast<std::size_t>(n));

  fd.kind = detail::classify(fd.target, st.st_mode);
  if (fd.kind == Kind::socket) fd.socket = inspect_socket(number);
  return fd;
}

std::string describe(const Fd& fd) {
  std::string line = "fd " + std::to_string(fd.number) + "  " + std::string(to_string(fd.kind));
  if (fd.socket) {
    const auto& s = *fd.socket;
    line += " " + s.protocol_name() + "  " + s.local;
    if (!s.peer.empty()) line += " -> " + s.peer;
    if (s.is_tcp()) line += "  " + std::string(to_string(s.state));
  } else if (fd.kind != Kind::eventfd && fd.kind != Kind::epoll && fd.kind != Kind::timerfd &&
             fd.kind != Kind::signalfd && fd.kind != Kind::inotify && fd.kind != Kind::pidfd) {
    line += "  " + fd.target;
  }
  return line;
}

std::string report(const std::vector<Fd>& fds, std::size_t frames) {
  std::string out;
  for (const auto& fd : fds) out += describe(fd) + "\n" + site_lines(fd.opened, "opened", frames);
  return out;
}

std::string to_json(const Fd& fd) {
  using detail::json_string;
  std::string j = "{\"fd\":" + std::to_string(fd.number) +
                  ",\"kind\":" + json_string(to_string(fd.kind)) +
                  ",\"target\":" + json_string(fd.target) +
                  ",\"device\":" + std::to_string(fd.device) +
                  ",\"inode\":" + std::to_string(fd.inode);
  if (fd.socket) {
    const auto& s = *fd.socket;
    j += ",\"protocol\":" + json_string(s.protocol_name()) +
         ",\"family\":" + std::to_string(s.family) + ",\"local\":" + json_string(s.local) +
         ",\"peer\":" + json_string(s.peer);
    if (s.is_tcp()) j += ",\"state\":" + json_string(to_string(s.state));
  }
  j += ",\"line\":" + json_string(describe(fd));
  if (fd.opened.known() || !fd.opened.unknown.empty()) j += ",\"opened\":" + detail::frames_json(fd.opened);
  j += "}";
  return j;
}

std::string to_json(const std::vector<Fd>& fds) {
  std::string j = "[";
  for (std::size_t i = 0; i < fds.size(); ++i) j += (i ? "," : "") + to_json(fds[i]);
  return j + "]";
}

}  // namespace closecheck
