// closecheck watch: samples a process tree's fds by kind and its TCP sockets by
// state, one row per interval, and flags monotonic growth at the end.
#include <poll.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <optional>
#include <set>
#include <utility>
#include <sstream>

#include "cli.hpp"
#include "closecheck/closecheck.hpp"
#include "closecheck/process.hpp"

namespace closecheck::cli {

namespace {

using clock = std::chrono::steady_clock;

// The columns: fds by kind, then held TCP sockets by state.
namespace col {
enum Column { fds, file, pipe, socket, epoll, eventfd, timerfd, other,
              listen, estab, close_wait, fin_wait, close, tcp_other, columns };
}
using col::Column;
constexpr int columns = col::columns;
constexpr std::array<const char*, columns> names = {
    "fds", "file", "pipe", "socket", "epoll", "eventfd", "timerfd", "other",
    "LISTEN", "ESTAB", "CLOSE_WAIT", "FIN_WAIT", "CLOSE", "tcp-other"};

struct Sample {
  double seconds = 0;
  int processes = 0;
  std::array<long, columns> count{};
};

Column kind_column(Kind k) {
  switch (k) {
    case Kind::file: case Kind::directory: return col::file;
    case Kind::pipe: case Kind::fifo: return col::pipe;
    case Kind::socket: return col::socket;
    case Kind::epoll: return col::epoll;
    case Kind::eventfd: return col::eventfd;
    case Kind::timerfd: return col::timerfd;
    default: return col::other;
  }
}

Column state_column(TcpState s) {
  switch (s) {
    case TcpState::listen: return col::listen;
    case TcpState::established: return col::estab;
    case TcpState::close_wait: return col::close_wait;
    case TcpState::fin_wait1: case TcpState::fin_wait2: return col::fin_wait;
    case TcpState::close: return col::close;
    default: return col::tcp_other;
  }
}

std::string proc_file(pid_t pid, const char* name) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + name);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The kernel's flags for pid (field 9 of /proc/PID/stat); nullopt if it is gone.
constexpr unsigned long pf_exiting = 0x4, pf_kthread = 0x00200000;
std::optional<unsigned long> task_flags(pid_t pid) { return stat_flags(proc_file(pid, "stat")); }

// pid and its descendants, from /proc/PID/task/TID/children.
std::vector<pid_t> tree(pid_t root) {
  std::vector<pid_t> out{root};
  for (std::size_t i = 0; i < out.size() && out.size() < 100000; ++i) {
    auto dir = "/proc/" + std::to_string(out[i]) + "/task";
    DIR* d = opendir(dir.c_str());
    if (!d) continue;
    while (auto* e = readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::ifstream in(dir + "/" + e->d_name + "/children");
      for (pid_t child; in >> child;) out.push_back(child);
    }
    closedir(d);
  }
  return out;
}

Sample take_sample(pid_t root, clock::time_point start) {
  Sample s;
  s.seconds = std::chrono::duration<double>(clock::now() - start).count();
  for (pid_t pid : tree(root)) {
    if (pid == getpid()) continue;  // watching an ancestor: not closecheck's own fds
    auto p = Process::open(pid);
    if (!p) continue;
    ++s.processes;
    for (const auto& fd : p->inspect_all()) {
      ++s.count[col::fds];
      ++s.count[kind_column(fd.kind)];
      if (fd.socket && fd.socket->is_tcp()) ++s.count[state_column(fd.socket->state)];
    }
  }
  return s;
}

std::string header() {
  char line[256];
  int n = std::snprintf(line, sizeof line, "%9s %5s", "time_s", "procs");
  for (int c = 0; c < columns; ++c)
    n += std::snprintf(line + n, sizeof line - n, c == col::listen ? "  | %s" : " %s", names[c]);
  return line;
}

std::string row(const Sample& s) {
  char line[256];
  int n = std::snprintf(line, sizeof line, "%9.3f %5d", s.seconds, s.processes);
  for (int c = 0; c < columns; ++c)
    n += std::snprintf(line + n, sizeof line - n, c == col::listen ? "  | %*ld" : " %*ld",
                       static_cast<int>(std::strlen(names[c])), s.count[c]);
  return line;
}

// Monotonic growth: never went down, and went up in at least min(3, steps) steps.
bool grows(const std::vector<Sample>& samples, int column) {
  if (samples.size() < 3) return false;
  std::size_t ups = 0;
  for (std::size_t i = 1; i < samples.size(); ++i) {
    if (samples[i].count[column] < samples[i - 1].count[column]) return false;
    ups += samples[i].count[column] > samples[i - 1].count[column];
  }
  return ups >= std::min<std::size_t>(3, samples.size() - 1);
}

// The samples growth is judged on: the longest stretch at the end in which
// the fd count never went down. It counts if it began in the first half of
// the watch and still grew in the second half; a count that only rose while
// the program started (a runtime's imports, its config files) does not.
std::vector<Sample> growth_window(const std::vector<Sample>& samples) {
  if (samples.size() < 3) return {};
  std::size_t from = samples.size() - 1;
  while (from > 0 && samples[from - 1].count[col::fds] <= samples[from].count[col::fds]) --from;
  double t0 = samples.front().seconds, half = t0 + (samples.back().seconds - t0) / 2;
  if (samples[from].seconds > half) return {};
  double last_up = t0;
  for (auto i = from + 1; i < samples.size(); ++i)
    if (samples[i].count[col::fds] > samples[i - 1].count[col::fds]) last_up = samples[i].seconds;
  if (last_up < half) return {};
  return {samples.begin() + static_cast<std::ptrdiff_t>(from), samples.end()};
}

std::string summary(const std::vector<Sample>& samples, bool& growth) {
  char line[512];
  std::string out;
  growth = false;
  if (samples.empty()) return "closecheck watch: no samples\n";
  double span = samples.back().seconds - samples.front().seconds;
  std::snprintf(line, sizeof line, "closecheck watch: %zu sample%s over %.3f s\n", samples.size(),
                samples.size() == 1 ? "" : "s", span);
  out += line;
  if (samples.size() < 3) return out + "closecheck watch: too few samples to judge growth (3 needed)\n";
  auto window = growth_window(samples);
  if (window.empty() || !grows(window, col::fds)) {
    std::snprintf(line, sizeof line, "closecheck watch: no monotonic growth (fds %ld -> %ld)\n",
                  samples.front().count[col::fds], samples.back().count[col::fds]);
    return out + line;
  }
  growth = true;
  const auto& first = window.front();
  const auto& last = window.back();
  long delta = last.count[col::fds] - first.count[col::fds];
  double grew = last.seconds - first.seconds;
  std::snprintf(line, sizeof line,
                "closecheck watch: GROWTH: fds grew monotonically %ld -> %ld (+%ld): "
                "%.1f fds/s, %.2f fds per sample\n",
                first.count[col::fds], last.count[col::fds], delta, grew > 0 ? delta / grew : 0.0,
                static_cast<double>(delta) / static_cast<double>(window.size() - 1));
  out += line;
  std::string by;
  for (int c = col::fds + 1; c < columns; ++c)
    if (last.count[c] > first.count[c] && grows(window, c))
      by += std::string(by.empty() ? "" : ", ") + names[c] + " +" +
            std::to_string(last.count[c] - first.count[c]);
  if (!by.empty()) out += "closecheck watch:   growing: " + by + "\n";
  return out;
}

// Checks that pid is a process whose fds closecheck can read.
Process open_target(pid_t pid) {
  std::string error;
  auto p = Process::open(pid, &error);
  if (!p) throw Error("watch: pid " + std::to_string(pid) + ": " + error);
  auto name = "pid " + std::to_string(pid) + " (" + p->command() + ")";
  if (pid == getpid()) throw Error("watch: " + name + " is closecheck itself");
  auto flags = task_flags(pid).value_or(0);
  if (flags & pf_kthread)
    throw Error("watch: " + name + " is a kernel thread: it has no fds to watch");
  auto dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d)
    throw Error("watch: " + name + ": cannot read its fds: " + std::strerror(errno) +
                " (closecheck needs ptrace permission over it)");
  closedir(d);
  for (const auto& fd : p->fds()) {
    if (int copy = static_cast<int>(syscall(SYS_pidfd_getfd, p->pidfd(), fd.number, 0)); copy >= 0) {
      ::close(copy);
      break;
    }
    if (errno == EBADF) break;  // closed meanwhile
    throw Error("watch: " + name + ": cannot inspect its fds: pidfd_getfd: " +
                std::strerror(errno) + " (closecheck needs ptrace permission over it)");
  }
  return std::move(*p);
}

}  // namespace

std::optional<unsigned long> stat_flags(const std::string& stat) {
  auto paren = stat.rfind(')');  // the command, field 2, may hold spaces and parentheses
  if (paren == std::string::npos) return std::nullopt;
  std::istringstream rest(stat.substr(paren + 1));
  std::string field;
  for (int i = 3; i <= 9 && rest >> field; ++i) {
    if (i < 9) continue;
    unsigned long flags = 0;
    auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), flags);
    if (ec != std::errc() || end != field.data() + field.size()) return std::nullopt;
    return flags;
  }
  return std::nullopt;
}

int watch(const WatchOptions& options) {
  std::optional<Process> target;
  pid_t child = 0;
  if (options.pid) {
    target.emplace(open_target(options.pid));
  } else {
    // Traced for two moments only: its exec (a sample before it has run) and
    // its exit (a sample before the kernel closes its fds). Its children are
    // not traced.
    child = spawn(options.argv, nullptr, [](pid_t pid) {
      if (ptrace(PTRACE_SEIZE, pid, 0, PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL) != 0)
        throw Error("cannot trace the program: ptrace: " + std::string(std::strerror(errno)));
    });
    std::string error;
    auto p = Process::open(child, &error);
    if (!p) throw Error("watch: the program: " + error);
    target.emplace(std::move(*p));
  }
  int signals = signalfd(-1, &handled_signals(), SFD_CLOEXEC);
  if (signals < 0) throw Error(std::string("signalfd: ") + std::strerror(errno));

  const bool tty = isatty(STDOUT_FILENO);
  auto start = clock::now();
  std::vector<Sample> samples;
  std::optional<Sample> at_exit;
  std::printf("%s\n", header().c_str());
  std::fflush(stdout);
  std::optional<int> child_status;
  bool stop = false, ending = false, exec_seen = false, exiting = false;
  auto print = [&](const Sample& s, const char* note) {
    bool same = !samples.empty() && samples.back().count == s.count &&
                samples.back().processes == s.processes && !*note;
    if (tty && same) std::printf("\r\033[K%s", row(s).c_str());  // live: only changes add a row
    else std::printf("%s%s%s", tty && !samples.empty() ? "\n" : "", row(s).c_str(), note);
    if (!tty) std::printf("\n");
    std::fflush(stdout);
  };
  // The traced program's stops: its exec, its exit, signals it is sent.
  auto service = [&] {
    int status = 0;
    for (pid_t tid; child && !child_status && (tid = waitpid(child, &status, __WALL | WNOHANG)) > 0;) {
      if (WIFEXITED(status) || WIFSIGNALED(status)) {
        child_status = status;
        stop = true;
        break;
      }
      int inject = 0;
      switch (status >> 16) {
        case 0: inject = WSTOPSIG(status); break;
        case PTRACE_EVENT_STOP:
          if (WSTOPSIG(status) != SIGTRAP) {  // a group-stop: stay stopped
            ptrace(PTRACE_LISTEN, tid, 0, 0);
            continue;
          }
          break;
        case PTRACE_EVENT_EXEC:
          if (samples.empty() && !ending) {
            exec_seen = true;
            start = clock::now();
            auto s = take_sample(child, start);
            print(s, "  (exec)");
            samples.push_back(s);
          }
          break;
        case PTRACE_EVENT_EXIT:
          if (!ending) {
            at_exit = take_sample(child, start);
            print(*at_exit, "  (exit)");
          }
          stop = exiting = true;
          break;
      }
      ptrace(PTRACE_CONT, tid, 0, inject);
    }
  };
  // Waits until next, the process's exit (stop) or a signal for closecheck.
  auto wait_until = [&](clock::time_point next) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(next - clock::now());
      if (left.count() <= 0 || stop || std::exchange(exec_seen, false)) return;
      pollfd p[2] = {{signals, POLLIN, 0}, {target->pidfd(), POLLIN, 0}};
      if (poll(p, 2, static_cast<int>(left.count()) + 1) < 0 && errno != EINTR)
        throw Error(std::string("poll: ") + std::strerror(errno));
      if (p[1].revents) {  // it exited
        stop = exiting = true;
        return;
      }
      if (p[0].revents) {
        signalfd_siginfo info{};
        if (read(signals, &info, sizeof info) != sizeof info) continue;
        if (info.ssi_signo == SIGCHLD) {
          service();
          continue;
        }
        if (!child) {  // watching a pid: stop watching, leave it alone
          stop = true;
          return;
        }
        siginfo_t si{};
        si.si_signo = static_cast<int>(info.ssi_signo);
        si.si_code = info.ssi_code;
        if (should_forward(si)) kill(child, si.si_signo);
      }
    }
  };
  // A program just started: wait for its exec sample, then sample after 10 ms,
  // doubling up to the interval, so that a program shorter than the interval
  // is still judged.
  auto step = child ? std::min<clock::duration>(options.interval, std::chrono::milliseconds(10))
                    : clock::duration(options.interval);
  auto next = child ? clock::now() + std::chrono::seconds(30) : start;
  if (child) {
    while (samples.empty() && !stop && clock::now() < next) wait_until(next);
    next = std::max(start + step, clock::now());
  }
  for (;;) {
    if (options.samples && static_cast<long>(samples.size()) >= options.samples) break;
    wait_until(next);
    if (stop) break;
    auto s = take_sample(target->pid(), start);
    // Exiting: its fds are being closed by the kernel, not by the program.
    if (auto flags = task_flags(target->pid()); !flags || (*flags & pf_exiting)) break;
    print(s, "");
    samples.push_back(s);
    step = std::min<clock::duration>(step * 2, options.interval);
    next += step;
    if (auto now = clock::now(); next < now) next = now;  // fell behind: no burst of samples
  }
  if (tty) std::printf("\n");
  bool ended_by_us = false;
  if (child) {
    // --samples ended the watch: the program ends with it (SIGTERM, then
    // SIGKILL after 5 s), its stops still serviced.
    ending = true;
    service();
    if (!child_status) {
      ended_by_us = !exiting;
      if (ended_by_us) kill(child, SIGTERM);
      auto give_up = clock::now() + std::chrono::seconds(5);
      while (!child_status) {
        pollfd p{signals, POLLIN, 0};
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(give_up - clock::now()).count();
        if (left <= 0) {
          kill(child, SIGKILL);
          give_up = clock::now() + std::chrono::hours(1);
        }
        poll(&p, 1, static_cast<int>(std::clamp<long long>(left, 0, 100)));
        signalfd_siginfo info{};
        if (p.revents) (void)!read(signals, &info, sizeof info);
        service();
      }
    }
  }
  close(signals);
  // A count that fell in the last sample before the exit is the program
  // ending (its cleanup, a runtime's finalizers): part of the exit, not of
  // the run that growth is judged on.
  while (at_exit && samples.size() >= 2 &&
         samples.back().count[col::fds] < samples[samples.size() - 2].count[col::fds])
    samples.pop_back();
  bool growth = false;
  std::printf("%s", summary(samples, growth).c_str());
  if (at_exit && !samples.empty())
    std::printf("closecheck watch: at exit (%.3f s): %ld fds, %ld at exec, %ld at the last sample\n",
                at_exit->seconds, at_exit->count[col::fds], samples.front().count[col::fds],
                samples.back().count[col::fds]);
  if (growth && at_exit && at_exit->count[col::fds] < samples.back().count[col::fds])
    std::printf("closecheck watch:   released before exit: fds %ld -> %ld (the program closed them as it ended: "
                "its own cleanup, or a runtime's finalizers)\n",
                samples.back().count[col::fds], at_exit->count[col::fds]);
  std::fflush(stdout);
  if (child_status) {
    int s = exit_status(*child_status);
    if (s != 0 && !ended_by_us) return s;  // the program's own failure
  }
  return growth ? 1 : 0;
}

}  // namespace closecheck::cli
