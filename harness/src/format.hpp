// Internal helpers shared by the harness's sources.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "closecheck/closecheck.hpp"
#include "closecheck/sweep.hpp"

namespace closecheck::detail {

std::string format_inet(int family, const void* addr, unsigned port_network_order);
std::string format_sockaddr(const sockaddr_storage&, socklen_t);

// The pure parts of reading the kernel, apart from the system calls so that
// the fuzz targets (harness/fuzz) can feed them arbitrary bytes.
// An fd's kind from its /proc/self/fd/N target and its fstat mode.
Kind classify(std::string_view target, mode_t mode);
// The inode in a "socket:[123]" target; nullopt for any other target.
std::optional<ino_t> socket_inode(std::string_view target);
// One recv() of a NETLINK_SOCK_DIAG dump: appends each inet_diag_msg to out;
// true at NLMSG_DONE. Throws std::runtime_error for an NLMSG_ERROR reply.
bool parse_diag(const void* data, std::size_t size, std::vector<DiagSocket>& out);

inline std::string json_string(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 15];
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// {"site": "file:line function", "frames": [{pc, module, function, file, line}...]}
std::string frames_json(const OpenSite&);

}  // namespace closecheck::detail
