// closecheck: find the file descriptors a piece of code leaves open, and name
// them the way `ss` and `lsof` would.
//
//   auto before = closecheck::Snapshot::take();
//   run_the_code();
//   for (const auto& fd : closecheck::find_leaks(before)) std::cout << describe(fd) << '\n';
//
// This header is the in-process check: describe, snapshot, find, ignore,
// expect. Beside it: gtest.hpp (the per-test check, Leaks), eventually.hpp
// (waiting without a sleep), sweep.hpp (every socket of the network
// namespace), process.hpp (another process's fds), netns.hpp, sites.hpp.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace closecheck {

// --- What an fd is -----------------------------------------------------------
enum class Kind {
  file, directory, pipe, fifo, socket, eventfd, epoll, timerfd, signalfd,
  inotify, pidfd, anon_inode, char_device, block_device, other
};
std::string_view to_string(Kind);

// Numbered as the kernel numbers them (include/net/tcp_states.h).
enum class TcpState : int {
  none = 0, established, syn_sent, syn_recv, fin_wait1, fin_wait2, time_wait,
  close, close_wait, last_ack, listen, closing, new_syn_recv
};
std::string_view to_string(TcpState);  // "CLOSE_WAIT", as ss prints it

struct SocketInfo {
  int family = 0;    // AF_INET, AF_INET6, AF_UNIX, AF_NETLINK, ...
  int type = 0;      // SOCK_STREAM, SOCK_DGRAM, ...
  int protocol = 0;  // IPPROTO_TCP, ... (the netlink family for AF_NETLINK)
  std::string local;  // "127.0.0.1:41234", "[::1]:80", "/run/x.sock", "@abstract"; "*" if unbound
  std::string peer;   // as local; "" if not connected
  TcpState state = TcpState::none;  // TCP only, read from the kernel with TCP_INFO
  bool is_tcp() const;
  std::string protocol_name() const;  // "tcp", "udp", "unix stream", "netlink route", ...
};

// Where an fd was opened: with libclosecheck_sites.so in the process
// (closecheck::gtest_main links it; `closecheck run` preloads it) every fd
// creation and close records its call stack, symbolized only when reported.
struct Frame {
  std::uint64_t pc = 0;
  std::string module;    // the ELF file: "/usr/lib/x86_64-linux-gnu/libcrypto.so.3"
  std::uint64_t offset = 0;  // pc within module
  std::string function;  // demangled; "" without symbols
  std::string file;      // source file; "" without debug info
  int line = 0;
  bool inlined = false;  // inlined at this pc into the next frame
  std::string where() const;  // "file:line function", or "module+0x1f3 function"
};
struct OpenSite {
  std::vector<Frame> frames;  // innermost first; the recorder, libc and ld.so left out
  std::size_t site = 0;       // frames[site]: the first frame in the program's own code
  std::string unknown;        // why there are no frames
  std::string note;           // why the site has no file:line (stripped, no -g)
  bool known() const { return !frames.empty(); }
};
// Whether pid (0: this process) records open sites.
bool recording_open_sites(pid_t pid = 0);

// One open descriptor. Its identity is (number, device, inode): a number that
// was closed and reused for a new object is a different Fd.
struct Fd {
  int number = -1;
  dev_t device = 0;
  ino_t inode = 0;
  Kind kind = Kind::other;
  std::string target;  // what /proc/self/fd/N points at: a path, "socket:[123]", "anon_inode:[eventfd]"
  std::optional<SocketInfo> socket;
  OpenSite opened;  // filled in for reported fds (find_leaks, expect_leaks, the CLI)
  bool same_object(const Fd& o) const {
    return number == o.number && device == o.device && inode == o.inode;
  }
};

// One line, like ss/lsof:  fd 7  socket tcp  127.0.0.1:41234 -> 127.0.0.1:39000  CLOSE_WAIT
std::string describe(const Fd&);
// One describe() line per fd, each followed by its open site (if known) and
// `frames` more frames of its stack.
std::string report(const std::vector<Fd>&, std::size_t frames = 3);
std::string to_json(const std::vector<Fd>&);  // a JSON array, one object per fd
std::string to_json(const Fd&);
std::optional<Fd> inspect(int fd);  // one descriptor of this process, classified

// --- Snapshot, find, ignore ----------------------------------------------------
// The identities of this process's open descriptors. Costs O(own fds).
class Snapshot {
 public:
  static Snapshot take();
  const std::vector<Fd>& fds() const { return fds_; }  // identity fields only
  bool contains(const Fd& fd) const;
  std::size_t size() const { return fds_.size(); }

 private:
  std::vector<Fd> fds_;  // sorted by number
};

// Ignore filters (goleak's Ignore*). Globs are fnmatch(3) patterns.
using Predicate = std::function<bool(const Fd&)>;
Predicate ignore_kind(Kind);
Predicate ignore_target(std::string glob);  // e.g. "/var/log/*", "anon_inode:[eventpoll]"
Predicate ignore_fd(int number);
Predicate ignore_snapshot(Snapshot);        // "everything open now" (goleak's IgnoreCurrent)
// An fd with a frame of its open site's stack whose function, source file,
// module or "file:line function" matches: "*libcrypto*", "*/my_pool.cpp:*".
Predicate ignore_opened_in(std::string glob);
void ignore_always(Predicate);  // for every check in this process from now on

struct Options {
  // Settling: a leak must still be there after backing off from first_wait,
  // doubling, until settle has passed (a descriptor another thread closes a
  // moment later is not a leak). eventually() waits the same way.
  std::chrono::microseconds first_wait{1000};
  std::chrono::milliseconds settle{1000};
  std::vector<Predicate> ignore;
  std::size_t frames = 3;  // stack frames shown after each open site
};

// Descriptors open now that are not in the baseline, classified, minus the
// ignored. With `now`, also hands back the last snapshot it took (a clean
// result's snapshot can serve as the next baseline, saving a scan).
std::vector<Fd> find_leaks(const Snapshot& baseline, const Options& = {}, Snapshot* now = nullptr);

// --- Expected leaks ------------------------------------------------------------
// A description of descriptors, built from small pieces:
//   tcp(TcpState::close_wait).peer("127.0.0.1:*")    kind(Kind::epoll)
class Match {
 public:
  Match() = default;
  Match with(std::string what, Predicate) const;  // add a condition
  Match state(TcpState) const;
  Match local(std::string glob) const;
  Match peer(std::string glob) const;
  Match target(std::string glob) const;
  // Its open site (the first frame in the program's own code) is in a source
  // file matching glob: opened_in("*/cases/close-wait-server/server.cpp").
  // Holds for any fd in a process that does not record open sites.
  Match opened_in(std::string glob) const;
  bool operator()(const Fd&) const;
  const std::string& description() const { return description_; }

 private:
  std::vector<Predicate> tests_;
  std::string description_ = "any fd";
};
Match any();
Match kind(Kind);
Match tcp();                   // a TCP socket (v4 or v6), any state
Match tcp(TcpState);
Match socket_protocol(std::string name);  // as SocketInfo::protocol_name(): "udp", "unix stream", ...

struct Expected {
  std::size_t count;
  Match match;
};

enum class Reclaim {
  keep,   // a live object still owns the leaked fds and will close them itself
  close,  // close(2) them: nothing owns them any more
};

struct Verdict {
  bool ok = false;
  std::string message;     // why not, with the report of what did leak
  std::vector<Fd> leaked;  // everything new since the block started
  explicit operator bool() const { return ok; }
};

// Runs block and checks that what it leaves open is exactly `expected`
// (each Expected claims `count` fds, first match wins; nothing may be left
// unclaimed; an empty list means "leaks nothing"), waiting as find_leaks does
// for the leak to reach that shape (a socket to reach CLOSE_WAIT, say). With
// Reclaim::close, then closes what matched. In a GoogleTest, use Leaks() and
// NoLeaks() (gtest.hpp).
Verdict expect_leaks(const std::vector<Expected>& expected, const std::function<void()>& block,
                     Reclaim reclaim = Reclaim::keep, const Options& = {});
Verdict expect_no_leaks(const std::function<void()>& block, const Options& = {});

// --- Double closes -------------------------------------------------------------
// A close(2) that failed with EBADF on a number the process had used: closed
// twice, or closed by someone else first (who then closed an fd that was not
// theirs). Both closes' stacks, and the open's.
struct BadClose {
  int fd = -1;  // -1: a line counting `more` beyond those kept
  OpenSite closed_now, closed_before, opened;
  std::uint64_t more = 0;
};
// This process's bad closes since the last call: the listener takes them
// after each test (and fails it); a test that expects one takes it first.
std::vector<BadClose> take_bad_closes();
std::string describe(const BadClose&, std::size_t frames = 3);

}  // namespace closecheck
