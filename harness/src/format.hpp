// Internal helpers shared by the harness's sources.
#pragma once

#include <sys/socket.h>

#include <string>
#include <string_view>

namespace closecheck::detail {

std::string format_inet(int family, const void* addr, unsigned port_network_order);
std::string format_sockaddr(const sockaddr_storage&, socklen_t);

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

}  // namespace closecheck::detail
