// What the benchmarks set up around the code they time: a private network
// namespace, loopback connections held by another process, extra fds of our
// own, leaked sockets, and the detectors people use today (lsof, /proc/net/tcp).
// Only the harness library is available here (the fixtures need the corpus build).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace bench {

// Moves this process into a network namespace of its own with loopback up
// (unshare(CLONE_NEWNET), or CLONE_NEWUSER|CLONE_NEWNET without root), so the
// socket counts are exact and other people's tests on the machine neither see
// nor disturb our 10,000 sockets. Returns a line for the benchmark context.
std::string enter_private_netns();

// `sockets` TCP sockets (sockets/2 loopback connections, both ends, plus one
// listener) held by a forked helper process for as long as this object lives.
class HostSockets {
 public:
  explicit HostSockets(int sockets);
  ~HostSockets();
  HostSockets(const HostSockets&) = delete;
  HostSockets& operator=(const HostSockets&) = delete;
  int sockets() const { return sockets_; }

 private:
  int sockets_;
  pid_t pid_ = -1;
  int to_child_ = -1;
};
// One helper at a time, kept alive across the benchmarks that want the same count.
void host_sockets(int sockets);

// Opens /dev/null until this process has `total` fds (stdio included); the
// destructor closes what it opened.
class OwnFds {
 public:
  explicit OwnFds(std::size_t total);
  ~OwnFds();
  OwnFds(const OwnFds&) = delete;
  OwnFds& operator=(const OwnFds&) = delete;

 private:
  std::vector<int> opened_;
};

// A loopback listener of this process, and server-side sockets left in
// CLOSE_WAIT: the leak every detector here is asked to find.
class LeakyServer {
 public:
  LeakyServer();
  ~LeakyServer();
  int leak_one();  // connect, accept, client closes; returns the leaked server-side fd
  // Closes a leaked fd with RST, so no TIME_WAIT or FIN_WAIT2 stays behind to
  // change the socket counts of the benchmarks that follow.
  static void reset(int fd);
  std::uint16_t port() const { return port_; }

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
};

// What `lsof -Ffn0 -p PID` lists (pytest's --lsof: before and after each test).
std::set<std::pair<std::string, std::string>> lsof_open_files(pid_t pid);

// Every TCP socket in /proc/net/tcp and /proc/net/tcp6: (inode, state as the
// kernel numbers it), every line parsed.
struct ProcTcp {
  unsigned long inode;
  int state;
};
std::vector<ProcTcp> read_proc_net_tcp();

// Runs argv with stdout and stderr sent to `output` (a file, or /dev/null).
struct RunResult {
  int status;          // the exit status, -1 if it did not exit normally
  double cpu_seconds;  // the child's user + system time (wait4)
};
RunResult run(const std::vector<std::string>& argv, const std::string& output = "/dev/null");

}  // namespace bench
