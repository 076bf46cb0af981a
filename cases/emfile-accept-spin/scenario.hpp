// The canonical scenario, shared by the tests and ci/corpus: the server runs
// in a forked child whose descriptor table is full (RLIMIT_NOFILE lowered,
// the rest filled with /dev/null), so that the test process keeps its limit.
// One client connects (the kernel completes it in the backlog), sends a line
// and waits; meanwhile the child counts its failed accepts and its CPU time.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdint>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"
#include "fixtures/net.hpp"
#include "fixtures/process.hpp"
#include "fixtures/variant.hpp"
#include "server.hpp"

namespace emfile_accept_spin {

using namespace std::chrono_literals;

inline constexpr const bool& broken = fixtures::variant.broken;
inline const bool reserve = std::string_view(fixtures::variant.name) == "fixed-reserve";

// What the child reports: its server's counters, its CPU time (user + system)
// and when it read them (its steady clock, the same on both sides of the fork).
struct Stats {
  std::uint64_t failed_accepts = 0, accepted = 0;
  std::chrono::microseconds cpu{0};
  std::chrono::microseconds at{0};
};

inline std::chrono::microseconds steady_now() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch());
}

inline std::chrono::microseconds cpu_time() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto us = [](const timeval& t) { return std::int64_t{t.tv_sec} * 1'000'000 + t.tv_usec; };
  return std::chrono::microseconds(us(u.ru_utime) + us(u.ru_stime));
}

// The highest open descriptor, from the names in /proc/self/fd alone. Not
// Snapshot::take(): it fstat()s every descriptor, the server thread's spare
// among them, and ThreadSanitizer takes that and the thread's later close()
// of the spare for a race.
inline int highest_fd() {
  int highest = -1;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir)) highest = std::max(highest, std::atoi(entry->d_name));
    closedir(dir);
  }
  return highest;
}

// The child: starts the server, fills its descriptor table, sends its port,
// then answers each command byte from the parent with one line of Stats:
// 's' only reports, 'r' first frees the filler descriptors (and returns once
// the server's thread is past any failed accept), 'f' fills the
// table again (the sessions open by then keep theirs). Exits when the
// parent closes its end.
inline int serve_with_a_full_table(int to_parent, int from_parent) {
  Server server;
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = static_cast<rlim_t>(highest_fd()) + 1 + 16;
  if (setrlimit(RLIMIT_NOFILE, &limit) != 0) return 3;
  // Under UBSan the first check of a dynamic type opens a pipe, which fails
  // with a full table as a false "invalid vptr" (fixtures/fault/README.md):
  // the category of the EOF a session may read while full is checked here.
  (void)error_code(asio::error::eof).failed();
  std::vector<fixtures::UniqueFd> fillers;
  auto fill = [&] {
    for (;;) {
      int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (fd < 0) return errno == EMFILE;
      fillers.emplace_back(fd);
    }
  };
  if (!fill()) return 4;
  auto line = std::to_string(server.endpoint().port()) + "\n";
  if (write(to_parent, line.data(), line.size()) < 0) return 5;
  char command;
  while (read(from_parent, &command, 1) == 1) {
    // After freeing the fillers, wait out the handler that may be running: the
    // reserve's drain closes whatever connects while it runs, room or not.
    if (command == 'r') fillers.clear();
    if (command == 'r' && !server.settle()) return 6;
    if (command == 'f' && !fill()) return 4;
    line = std::to_string(server.failed_accepts()) + " " + std::to_string(server.accepted()) + " " +
           std::to_string(cpu_time().count()) + " " + std::to_string(steady_now().count()) + "\n";
    if (write(to_parent, line.data(), line.size()) < 0) return 5;
  }
  return 0;
}

// The parent's side: the child and its port; commands with their answers.
class FullServer {
 public:
  FullServer() : child_(serve_with_a_full_table) {
    auto line = fixtures::read_until(child_.from_child(), '\n', 10s);
    if (!line || line->empty()) throw std::runtime_error("the server's child did not start (exit " +
                                                         std::to_string(child_.wait(1s).value_or(-1)) + ")");
    port_ = static_cast<std::uint16_t>(std::stoi(*line));
  }
  std::uint16_t port() const { return port_; }
  Stats stats() { return ask('s'); }
  Stats release() { return ask('r'); }  // frees the fillers: the table has room again
  Stats refill() { return ask('f'); }   // fills what is free again: full once more
  int finish() {                        // the child's exit status (0: it stopped cleanly)
    child_.close_to_child();
    return child_.wait(10s).value_or(-1);
  }
  // Waits until the server has failed at least n accepts (false after 10 s).
  bool failed_at_least(std::uint64_t n) {
    return closecheck::eventually([&] { return stats().failed_accepts >= n; }, {.settle = 10s});
  }
  // Waits `window` for the child to die (it should not): a measuring window.
  void watch(std::chrono::milliseconds window) { fixtures::wait_readable(child_.from_child(), window); }

 private:
  Stats ask(char command) {
    if (::write(child_.to_child(), &command, 1) != 1) throw std::runtime_error("the server's child is gone");
    auto line = fixtures::read_until(child_.from_child(), '\n', 10s);
    Stats s;
    std::int64_t cpu = 0, at = 0;
    std::istringstream in(line.value_or(""));
    if (!(in >> s.failed_accepts >> s.accepted >> cpu >> at)) throw std::runtime_error("the server's child did not answer");
    s.cpu = std::chrono::microseconds(cpu);
    s.at = std::chrono::microseconds(at);
    return s;
  }

  fixtures::Forked child_;
  std::uint16_t port_ = 0;
};

// What a client that connected while the table was full saw, and what the
// server did in the window: an answer, a close (EOF or reset), or nothing yet.
struct Observed {
  std::optional<std::string> reply;  // nullopt: still waiting; "": closed; else the answer
  std::uint64_t failed_in_window = 0;          // the child's failed accepts between the two reads
  std::chrono::microseconds cpu_in_window{0};  // the child's CPU time (user + system) between them
  std::chrono::microseconds measured{0};       // the child's clock between the two reads: >= window
};

inline constexpr auto window = 200ms;
// The bounds the tests assert for failed accepts in the window. How many a
// spin reaches depends on the machine (the corpus line reports the count); the
// bounds do not. Broken: at least 1,000, one failed accept per 200 us: a
// loop that only fails accept(2) and posts its handler again is far faster
// than that, and a loop with any back-off is far below it. Fixed: the back-off
// allows window / 100 ms + 1 = 3; the reserve none. 5 leaves room for a
// window that runs long.
inline constexpr std::uint64_t spin_at_least = 1000, fixed_at_most = 5;

// The machine a count was measured on, as far as a line can say it and stay
// comparable between machines: "2 CPUs".
inline std::string machine() { return std::to_string(std::thread::hardware_concurrency()) + " CPUs"; }

// The client connects and sends a line; once the server has failed to accept
// it, the window starts: the client waits for a reply, the parent for the
// window to end, and the child's counters are read at both ends.
inline Observed one_waiting_client(FullServer& server, fixtures::UniqueFd& client) {
  client = fixtures::connect_tcp("127.0.0.1", server.port());
  fixtures::send_all(client.get(), "hello\n");
  if (!server.failed_at_least(1)) throw std::runtime_error("the server never tried to accept");
  auto before = server.stats();
  auto start = std::chrono::steady_clock::now();  // after the child's first read
  Observed seen;
  seen.reply = fixtures::read_until(client.get(), '\n', window);
  // The rest of the window, to the microsecond (a wait in whole milliseconds
  // can end up to one short).
  for (auto now = std::chrono::steady_clock::now(); now < start + window; now = std::chrono::steady_clock::now())
    server.watch(std::chrono::ceil<std::chrono::milliseconds>(start + window - now));
  auto after = server.stats();  // asked once the window has passed here, so read after it there too
  seen.measured = after.at - before.at;
  seen.failed_in_window = after.failed_accepts - before.failed_accepts;
  seen.cpu_in_window = after.cpu - before.cpu;
  return seen;
}

// Whether what was seen is what this variant must do, and if not, why.
inline std::string unexpected(const Observed& seen) {
  std::ostringstream why;
  if (broken && seen.failed_in_window < spin_at_least)
    why << "expected a spin (>= " << spin_at_least << " failed accepts in the window), got "
        << seen.failed_in_window << "\n";
  if (!broken && seen.failed_in_window > fixed_at_most)
    why << "expected at most " << fixed_at_most << " failed accepts in the window, got "
        << seen.failed_in_window << "\n";
  if (reserve && seen.reply != std::string())
    why << "expected the waiting client to be closed, got " << (seen.reply ? "'" + *seen.reply + "'" : "nothing") << "\n";
  if (!reserve && seen.reply)
    why << "expected the waiting client to wait, got '" << *seen.reply << "'\n";
  return why.str();
}

inline std::string describe(const Observed& seen) {
  std::ostringstream s;
  s << "accept failed " << seen.failed_in_window << " times (EMFILE) in " << seen.measured.count() / 1000 << " ms, "
    << seen.cpu_in_window.count() / 1000 << " ms CPU; the waiting client "
    << (!seen.reply ? "got no answer" : seen.reply->empty() ? "was closed" : "was answered") << "; on "
    << machine();
  return s.str();
}

}  // namespace emfile_accept_spin
