// The namespace-wide view: NETLINK_SOCK_DIAG with a kernel-side state filter,
// and matching socket inodes against other processes' descriptors.
#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <unordered_set>

#include "closecheck/closecheck.hpp"
#include "closecheck/sweep.hpp"
#include "format.hpp"

namespace closecheck {

namespace {

void dump_family(int nl, int family, std::uint32_t state_mask, std::vector<DiagSocket>& out) {
  struct {
    nlmsghdr header;
    inet_diag_req_v2 request;
  } message{};
  message.header.nlmsg_len = sizeof message;
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  message.request.sdiag_family = static_cast<std::uint8_t>(family);
  message.request.sdiag_protocol = IPPROTO_TCP;
  message.request.idiag_states = state_mask;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(nl, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof kernel) < 0)
    throw std::runtime_error(std::string("sock_diag request: ") + std::strerror(errno));

  alignas(nlmsghdr) char buf[32768];
  for (;;) {
    auto n = recv(nl, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("sock_diag reply: ") + std::strerror(errno));
    }
    if (n == 0 || detail::parse_diag(buf, static_cast<std::size_t>(n), out)) return;
  }
}

std::string read_comm(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

}  // namespace

namespace detail {

bool parse_diag(const void* data, std::size_t size, std::vector<DiagSocket>& out) {
  int len = static_cast<int>(std::min<std::size_t>(size, INT_MAX));
  for (auto* h = static_cast<const nlmsghdr*>(data); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
    if (h->nlmsg_type == NLMSG_DONE) return true;
    if (h->nlmsg_type == NLMSG_ERROR) {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr)))
        throw std::runtime_error("sock_diag: truncated error reply");
      int error = static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
      // The kernel sends -errno; anything else is named by its number.
      if (error < 0 && error > -4096) throw std::runtime_error(std::string("sock_diag: ") + std::strerror(-error));
      throw std::runtime_error("sock_diag: error reply " + std::to_string(error));
    }
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) continue;
    auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
    DiagSocket s;
    s.family = m->idiag_family;
    s.state = static_cast<TcpState>(m->idiag_state);
    s.local = format_inet(s.family, m->id.idiag_src, m->id.idiag_sport);
    s.peer = format_inet(s.family, m->id.idiag_dst, m->id.idiag_dport);
    s.inode = m->idiag_inode;
    s.uid = m->idiag_uid;
    s.recv_q = m->idiag_rqueue;
    s.send_q = m->idiag_wqueue;
    out.push_back(std::move(s));
  }
  return false;
}

}  // namespace detail

std::vector<DiagSocket> sweep(std::uint32_t state_mask) {
  int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (nl < 0) throw std::runtime_error(std::string("sock_diag socket: ") + std::strerror(errno));
  std::vector<DiagSocket> out;
  try {
    dump_family(nl, AF_INET, state_mask, out);
    dump_family(nl, AF_INET6, state_mask, out);
  } catch (...) {
    close(nl);
    throw;
  }
  close(nl);
  return out;
}

std::vector<HeldElsewhere> held_elsewhere(std::uint32_t state_mask) {
  std::unordered_set<ino_t> mine;
  auto own = Snapshot::take();
  for (const auto& fd : own.fds()) mine.insert(fd.inode);
  std::map<ino_t, DiagSocket> wanted;
  for (auto& s : sweep(state_mask))
    if (s.inode != 0 && !mine.contains(s.inode)) wanted.emplace(s.inode, std::move(s));

  std::vector<HeldElsewhere> out;
  if (wanted.empty()) return out;
  const std::string self = std::to_string(getpid());
  DIR* proc = opendir("/proc");
  if (!proc) return out;
  while (auto* p = readdir(proc)) {
    std::string pid = p->d_name;
    if (pid.empty() || pid[0] < '0' || pid[0] > '9' || pid == self) continue;
    std::string dir = "/proc/" + pid + "/fd";
    DIR* fds = opendir(dir.c_str());
    if (!fds) continue;  // gone, or not ours to read
    while (auto* f = readdir(fds)) {
      if (f->d_name[0] < '0' || f->d_name[0] > '9') continue;
      char target[64];
      auto n = readlink((dir + "/" + f->d_name).c_str(), target, sizeof target - 1);
      if (n <= 8) continue;
      auto inode = detail::socket_inode({target, static_cast<std::size_t>(n)});
      if (!inode) continue;
      auto it = wanted.find(*inode);
      if (it == wanted.end()) continue;
      out.push_back({it->second, static_cast<pid_t>(std::stol(pid)), std::atoi(f->d_name),
                     read_comm(pid)});
    }
    closedir(fds);
  }
  closedir(proc);
  return out;
}

std::string describe(const HeldElsewhere& h) {
  return "pid " + std::to_string(h.pid) + " (" + h.command + ") fd " + std::to_string(h.fd) +
         "  socket tcp  " + h.socket.local + " -> " + h.socket.peer + "  " +
         std::string(to_string(h.socket.state));
}

}  // namespace closecheck
