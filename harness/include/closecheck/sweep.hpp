// Beyond this process: every TCP socket of the network namespace (sweep), and
// the ones another process holds (held_elsewhere). process.hpp reads another
// process's descriptors; netns.hpp gives a test a network namespace of its own.
//
//   for (const auto& s : closecheck::sweep(closecheck::state_bit(TcpState::close_wait)))
//     std::cout << s.local << " -> " << s.peer << '\n';
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "closecheck/closecheck.hpp"

namespace closecheck {

constexpr std::uint32_t state_bit(TcpState s) { return 1u << static_cast<int>(s); }

// Every TCP socket in the network namespace whose state is in state_mask
// (state_bit(...) | ...), read with NETLINK_SOCK_DIAG; the kernel filters by state.
struct DiagSocket {
  int family = 0;
  TcpState state = TcpState::none;
  std::string local, peer;
  ino_t inode = 0;  // 0: no descriptor refers to it any more (an orphan)
  uid_t uid = 0;
  // ss's Recv-Q and Send-Q: bytes received and not yet read, bytes sent and
  // not yet acknowledged (for a LISTEN socket: connections in the backlog, and its size).
  std::uint32_t recv_q = 0, send_q = 0;
};
std::vector<DiagSocket> sweep(std::uint32_t state_mask);

// Sockets in state_mask that this process does not hold but another process
// does (a child that inherited them, say): matched by inode against /proc/PID/fd.
struct HeldElsewhere {
  DiagSocket socket;
  pid_t pid = 0;
  int fd = -1;
  std::string command;  // /proc/PID/comm
};
std::vector<HeldElsewhere> held_elsewhere(std::uint32_t state_mask);
std::string describe(const HeldElsewhere&);

}  // namespace closecheck
