#include "closecheck/netns.hpp"

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace closecheck {

std::optional<std::string> enter_private_network(std::string* error) {
  std::string how = "unshare(CLONE_NEWNET)";
  if (unshare(CLONE_NEWNET) != 0) {
    int as_root = errno;
    how = "unshare(CLONE_NEWUSER|CLONE_NEWNET)";
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0) {
      if (error)
        *error = std::string("no private network namespace: unshare(CLONE_NEWNET): ") + std::strerror(as_root) +
                 "; with CLONE_NEWUSER: " + std::strerror(errno);
      return std::nullopt;
    }
  }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ifreq ifr{};
  std::strcpy(ifr.ifr_name, "lo");
  bool up = s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0 &&
            (ifr.ifr_flags |= IFF_UP, ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
  int saved = errno;
  if (s >= 0) close(s);
  if (!up) throw std::runtime_error(how + ": cannot bring lo up: " + std::strerror(saved));
  return how;
}

}  // namespace closecheck
