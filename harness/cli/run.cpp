// closecheck run: follows a program and its children with ptrace and reports
// the descriptors that harm someone (docs/cli.md, "What is a finding"):
//   - a TCP socket in CLOSE_WAIT: its peer hung up and the program never
//     closed its end (checked when a process exits, and when a listener
//     closes: its sessions and its clients in CLOSE_WAIT that outlive the
//     close by --settle);
//   - a TCP socket a process inherited from its parent and received across
//     exec, and kept after every other holder closed it: the peer gets no
//     FIN, the port stays bound.
// --strict adds every other fd a process still holds when it exits.
// Never a finding: stdio, what the program was started with, and an fd the
// parent that set it up still holds.
// Another process's fd is classified by duplicating it with pidfd_getfd(2)
// and running the harness's own inspect() on the copy (closecheck::Process).
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "format.hpp"
#include "cli.hpp"
#include "close_events.hpp"
#include "closecheck/closecheck.hpp"
#include "closecheck/process.hpp"
#include "closecheck/sites.hpp"
#include "closecheck/sweep.hpp"

namespace closecheck::cli {

namespace {

using clock = std::chrono::steady_clock;
using Ident = std::pair<dev_t, ino_t>;
Ident ident(const Fd& fd) { return {fd.device, fd.inode}; }

constexpr long trace_options = PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE |
                               PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT | PTRACE_O_TRACESECCOMP |
                               PTRACE_O_EXITKILL;  // closecheck gone: no tracee left behind

// In the child before exec: stop at close(2) only, so that closing a listener
// can be a checkpoint. Returns 0 or an errno.
int install_close_trap() {
#if defined(__x86_64__)
  constexpr std::uint32_t arch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
  constexpr std::uint32_t arch = AUDIT_ARCH_AARCH64;
#else
  return 0;  // no listener checkpoint on this architecture; exits are still checked
#endif
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_close, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof code / sizeof code[0]), code};
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
  if (errno != EACCES) return errno;
  // Without CAP_SYS_ADMIN a filter needs no_new_privs.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0 ? 0 : errno;
}

pid_t read_tgid(pid_t tid) {
  std::ifstream in("/proc/" + std::to_string(tid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.starts_with("Tgid:")) return static_cast<pid_t>(std::stol(line.substr(5)));
  return tid;
}

// The identities of pid's fds (a stat of each /proc/PID/fd/N: no readlink,
// no pidfd; at every fork, so it is kept cheap).
std::set<Ident> identities(pid_t pid) {
  std::set<Ident> out;
  auto dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (auto* e = readdir(d)) {
    struct stat st{};
    if (e->d_name[0] >= '0' && e->d_name[0] <= '9' && fstatat(dirfd(d), e->d_name, &st, 0) == 0)
      out.insert({st.st_dev, st.st_ino});
  }
  closedir(d);
  return out;
}

bool is_socket(const Fd& fd) { return fd.target.starts_with("socket:["); }
bool is_stdio(int number) { return number >= 0 && number <= 2; }

bool tcp_in(const Fd& fd, TcpState state) {
  return fd.socket && fd.socket->is_tcp() && fd.socket->state == state;
}
bool in_close_wait(const Fd& fd) { return tcp_in(fd, TcpState::close_wait); }

// "127.0.0.1:80" -> ("127.0.0.1", "80"); "[::1]:80" -> ("::1", "80");
// "[::ffff:127.0.0.1]:80" -> ("127.0.0.1", "80").
std::pair<std::string, std::string> split_address(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) return {address, ""};
  auto host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.starts_with("::ffff:") && host.find('.') != std::string::npos) host = host.substr(7);
  return {host, address.substr(colon + 1)};
}

// Whether address is the endpoint a listener bound to `listener` accepts on.
bool on_listener(const std::string& listener, const std::string& address) {
  auto [lhost, lport] = split_address(listener);
  auto [host, port] = split_address(address);
  if (lport.empty() || lport != port) return false;
  return lhost == host || lhost == "0.0.0.0" || lhost == "::" || lhost == "*";
}

// Recv-Q of every CLOSE_WAIT socket in pid's network namespace, by inode
// (NETLINK_SOCK_DIAG, read from inside that namespace). For TCP it is
// rcv_nxt - copied_seq, and the peer's FIN counts one: 0 means the program
// has read the EOF, 1 or more that the FIN (or data) is still unread.
std::map<ino_t, std::uint32_t> receive_queues(pid_t pid) {
  std::map<ino_t, std::uint32_t> out;
  auto read = [&] {
    try {
      for (const auto& s : sweep(state_bit(TcpState::close_wait)))
        if (s.inode) out[s.inode] = s.recv_q;
    } catch (const std::exception&) {
      // no sock_diag here: every hang-up counts as unread
    }
  };
  struct stat mine{}, theirs{};
  auto ns = "/proc/" + std::to_string(pid) + "/ns/net";
  if (stat("/proc/self/ns/net", &mine) != 0 || stat(ns.c_str(), &theirs) != 0 || mine.st_ino == theirs.st_ino) {
    read();
    return out;
  }
  // A namespace of the program's own (unshare -n): a thread joins it to ask.
  std::thread([&] {
    int fd = open(ns.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && setns(fd, CLONE_NEWNET) == 0) read();
    if (fd >= 0) close(fd);
  }).join();
  return out;
}

// Milliseconds since the last segment from the peer (for a socket in
// CLOSE_WAIT, usually its FIN), from TCP_INFO on a duplicate of the fd.
std::optional<std::uint32_t> since_peer_ms(const Process& p, int number) {
  int copy = static_cast<int>(syscall(SYS_pidfd_getfd, p.pidfd(), number, 0));
  if (copy < 0) return std::nullopt;
  tcp_info info{};
  socklen_t len = sizeof info;
  int r = getsockopt(copy, IPPROTO_TCP, TCP_INFO, &info, &len);
  close(copy);
  if (r != 0) return std::nullopt;
  return std::min(info.tcpi_last_ack_recv, info.tcpi_last_data_recv);
}

enum class Type {
  close_wait,        // a TCP socket in CLOSE_WAIT: the peer hung up, the program never closed it
  held_after_close,  // a TCP socket kept by a process that got it across exec, after its owner closed it
  held_at_exit,      // --strict: any other fd still open at exit
};

const char* type_name(Type t) {
  switch (t) {
    case Type::close_wait: return "close-wait";
    case Type::held_after_close: return "held-after-close";
    case Type::held_at_exit: return "held-at-exit";
  }
  return "?";
}

enum class When { exit, listener_close };
enum class Fate { held_at_exit, closed, unknown };

struct Finding {
  Type type = Type::held_at_exit;
  When when = When::exit;
  pid_t pid = 0;
  std::string command;
  std::string exe;
  Fd fd;
  pid_t inherited_from = 0;  // the parent it came from, which has closed it
  std::string parent_command;
  std::string parent_exe;
  bool crossed_exec = false;  // it came through an exec without close-on-exec
  pid_t closer = 0;           // listener_close: who closed which listener
  std::string closer_command;
  std::string listener;
  bool client = false;        // listener_close: connected to that listener (else accepted on it)
  bool eof_read = false;      // CLOSE_WAIT: the program had read the EOF
  Fate fate = Fate::unknown;  // what became of it after a listener_close finding
  double seconds = 0;         // when it was found, since the program started
  double closed_after = 0;    // Fate::closed: seconds from the finding to the close
};

// A socket in CLOSE_WAIT when its listener closed (a session of it, or a
// client of it): a finding if it is still held --settle later, or when its
// process exits.
struct Candidate {
  Finding finding;
  clock::time_point deadline;
};

struct ProcessInfo {
  pid_t parent = 0;
  std::uint64_t bad_closes_seen = 0;  // double closes it inherited with the parent's table
  std::string command;
  std::string exe;            // /proc/PID/exe since its last exec
  std::set<Ident> inherited;  // the parent's fds when it forked this one
  std::set<Ident> crossed;    // fds above stdio that came through its last exec
};

std::string exe_of(pid_t pid) {
  char target[4096];
  auto link = "/proc/" + std::to_string(pid) + "/exe";
  auto n = readlink(link.c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<std::size_t>(n)) : std::string();
}

std::string process_name(pid_t pid, const std::string& command) {
  return "pid " + std::to_string(pid) + " (" + command + ")";
}

class Tracer {
 public:
  explicit Tracer(const RunOptions& options) : options_(options) {}
  int run();

 private:
  void handle(pid_t tid, int status);
  void on_new_task(pid_t tid, bool process);
  void on_exec(pid_t tid);
  void on_exit(pid_t pid);
  void on_close(pid_t tid);
  void on_listener_close(pid_t pid, const std::string& address);
  // The in-kernel path (CloseEvents): events read before each stop is handled.
  void drain_events();
  void on_listener_stop(pid_t tid);
  void on_close_wait_closed(const CloseEvents::Event& ev);
  void watch(pid_t pid, std::uint32_t interest);
  void sync_interest();
  void settle_candidates(bool all);
  bool held_by_others(pid_t pid, const Ident& id) const;
  Finding* find(pid_t pid, int number, const Ident& id);
  std::vector<Candidate>::iterator candidate(pid_t pid, const Fd& fd);
  Finding make(Type type, When when, pid_t pid, const Process& p, Fd fd);
  void add(Finding f);
  void find_site(pid_t pid, Finding& f) const;
  bool alive(pid_t pid) const { return tasks_.contains(pid) && tasks_.at(pid) == pid; }
  double now() const { return std::chrono::duration<double>(clock::now() - start_).count(); }
  std::string why(const Finding&) const;
  std::string text_report() const;
  std::string json_report() const;
  bool fails(const Finding&) const;
  // A double close fails only with --fail-on leaks: programs nobody here wrote
  // (bash, socat) close fds twice on purpose and ignore the EBADF.
  bool closes_fail() const { return options_.fail_on == FailOn::leaks; }
  int status() const;

  const RunOptions& options_;
  clock::time_point start_ = clock::now();
  pid_t root_ = 0;
  std::optional<int> root_status_;
  std::map<pid_t, pid_t> tasks_;  // every traced thread -> its process (tgid)
  std::map<pid_t, ProcessInfo> processes_;
  std::set<Ident> baseline_;      // what the program had at exec: stdio and the caller's fds
  bool have_baseline_ = false;
  std::vector<Finding> findings_;
  std::vector<Candidate> candidates_;
  struct DoubleClose {
    pid_t pid;
    std::string command, exe;
    BadClose close;
  };
  std::vector<DoubleClose> double_closes_;
  std::vector<Predicate> ignore_opened_in_;
  std::unique_ptr<CloseEvents> events_;  // null: the seccomp close trap (or none)
  std::string close_trap_ = "none";
  std::map<pid_t, std::vector<CloseEvents::Event>> pending_;  // listener closes by thread, until it stops
  std::map<pid_t, std::uint32_t> interest_;                   // what the kernel reports, by live process
  std::size_t ignored_ = 0, checked_ = 0, not_findings_ = 0, settled_ = 0;
};

void Tracer::handle(pid_t tid, int status) {
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    if (tid == root_) root_status_ = status;
    pending_.erase(tid);  // a listener closed by its exit: it was checked at its exit event
    if (tasks_.contains(tid) && tasks_[tid] == tid) watch(tid, 0);
    tasks_.erase(tid);
    return;
  }
  if (!WIFSTOPPED(status)) return;
  if (!tasks_.contains(tid)) {  // seen before its parent's event
    tasks_[tid] = read_tgid(tid);
    if (tasks_[tid] == tid) watch(tid, CloseEvents::listener_closes);
  }
  int sig = WSTOPSIG(status);
  int inject = 0;
  switch (status >> 16) {
    case 0:
      inject = sig;  // a signal for the program: deliver it
      if (sig == SIGSTOP && events_) {
        // The kernel's stop after a listener's close (CloseEvents: only a
        // traced process gets it, si_code SI_KERNEL): never delivered, or the
        // program would stay stopped. A SIGSTOP someone sent (SI_USER...)
        // still stops the program (it may have merged with the kernel's).
        siginfo_t si{};
        bool kernels = ptrace(PTRACE_GETSIGINFO, tid, 0, &si) == 0 && si.si_code == SI_KERNEL;
        if (kernels) inject = 0;
        if (kernels || pending_.contains(tid)) on_listener_stop(tid);
      }
      break;
    case PTRACE_EVENT_STOP:
      if (sig != SIGTRAP) {       // a group-stop (SIGSTOP, SIGTSTP...): stay stopped
        ptrace(PTRACE_LISTEN, tid, 0, 0);
        return;
      }
      break;                      // a new task's first stop
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK: on_new_task(tid, true); break;
    case PTRACE_EVENT_CLONE: on_new_task(tid, false); break;
    case PTRACE_EVENT_EXEC: on_exec(tid); break;
    case PTRACE_EVENT_EXIT:
      if (tasks_[tid] == tid) on_exit(tid);  // only the thread-group leader's exit
      break;
    case PTRACE_EVENT_SECCOMP:
      if (!events_) on_close(tid);  // (with the in-kernel trap, a filter the program installed itself)
      break;
  }
  ptrace(PTRACE_CONT, tid, 0, inject);
}

void Tracer::on_new_task(pid_t tid, bool process) {
  unsigned long msg = 0;
  ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg);
  auto child = static_cast<pid_t>(msg);
  auto tgid = process ? child : read_tgid(child);  // a clone may be either
  tasks_[child] = tgid;
  if (tgid != child) return;  // a thread
  watch(child, CloseEvents::listener_closes);
  auto parent = tasks_[tid];
  auto& info = processes_[child];
  info.parent = parent;
  info.command = processes_[parent].command;
  info.exe = processes_[parent].exe;
  info.inherited = identities(parent);  // the parent is stopped: its table is the child's
  if (options_.open_sites) {
    info.bad_closes_seen = UINT64_MAX;  // only the count: the child's copy holds the parent's
    bad_closes(&info.bad_closes_seen, parent);
  }
}

void Tracer::on_exec(pid_t tid) {
  unsigned long former = 0;
  ptrace(PTRACE_GETEVENTMSG, tid, 0, &former);
  if (static_cast<pid_t>(former) != tid) tasks_.erase(static_cast<pid_t>(former));
  tasks_[tid] = tid;
  auto p = Process::open(tid);
  if (!p) return;
  auto& info = processes_[tid];
  info.command = p->command();
  info.exe = exe_of(tid);
  info.crossed.clear();
  auto fds = p->fds();  // close-on-exec fds are gone by now: the rest came through
  if (tid == root_ && !have_baseline_) {
    for (const auto& fd : fds) baseline_.insert(ident(fd));
    have_baseline_ = true;
    return;
  }
  for (const auto& fd : fds)
    if (!is_stdio(fd.number) && !baseline_.contains(ident(fd))) info.crossed.insert(ident(fd));
}

// Whether a traced process other than pid holds id now.
bool Tracer::held_by_others(pid_t pid, const Ident& id) const {
  for (const auto& [other, info] : processes_)
    if (other != pid && alive(other) && identities(other).contains(id)) return true;
  return false;
}

Finding* Tracer::find(pid_t pid, int number, const Ident& id) {
  for (auto& f : findings_)
    if (f.pid == pid && f.fd.number == number && ident(f.fd) == id) return &f;
  return nullptr;
}

std::vector<Candidate>::iterator Tracer::candidate(pid_t pid, const Fd& fd) {
  return std::find_if(candidates_.begin(), candidates_.end(), [&](const Candidate& c) {
    return c.finding.pid == pid && c.finding.fd.same_object(fd);
  });
}

Finding Tracer::make(Type type, When when, pid_t pid, const Process& p, Fd fd) {
  Finding f;
  f.type = type;
  f.when = when;
  f.pid = pid;
  f.command = p.command();
  f.exe = exe_of(pid);
  f.fd = std::move(fd);
  f.seconds = now();
  f.crossed_exec = processes_[pid].crossed.contains(ident(f.fd));
  find_site(pid, f);
  return f;
}

void Tracer::on_exit(pid_t pid) {
  auto p = Process::open(pid);
  if (!p) return;
  ++checked_;
  auto& info = processes_[pid];
  info.command = p->command();
  auto fds = p->fds();
  std::set<Ident> stdio;
  for (const auto& fd : fds)
    if (is_stdio(fd.number)) stdio.insert(ident(fd));
  std::optional<std::set<Ident>> parent_now;
  std::optional<std::map<ino_t, std::uint32_t>> queues;
  auto recorder = options_.open_sites ? recorder_fds(pid) : std::vector<int>{};
  for (const auto& id : fds) {
    if (std::find(recorder.begin(), recorder.end(), id.number) != recorder.end()) continue;  // closecheck's own
    // Stdio, what the program started with, and the same object as this
    // process's stdio (handed to it on purpose) are never findings.
    if (is_stdio(id.number) || baseline_.contains(ident(id)) || stdio.contains(ident(id))) continue;
    if (auto* f = find(pid, id.number, ident(id))) {  // found earlier: say it is still held
      f->fate = Fate::held_at_exit;
      continue;
    }
    bool inherited = info.parent && info.inherited.contains(ident(id));
    if (inherited) {
      if (!parent_now) parent_now = alive(info.parent) ? identities(info.parent) : std::set<Ident>{};
      if (parent_now->contains(ident(id))) continue;  // the parent that set it up still holds it
    }
    if (!is_socket(id) && !options_.strict) {
      ++not_findings_;
      continue;
    }
    auto fd = p->inspect(id.number);
    if (!fd) continue;
    Type type = Type::held_at_exit;
    bool eof_read = false;
    auto found = candidate(pid, *fd);
    if (in_close_wait(*fd)) {
      if (!queues) queues = receive_queues(pid);
      auto q = queues->find(fd->inode);
      eof_read = q != queues->end() && q->second == 0;
      // A FIN it never read is its finding if it came --settle before the
      // exit (or its listener had closed): not when it was still arriving.
      auto age = since_peer_ms(*p, id.number);
      if (eof_read || found != candidates_.end() || (age && *age >= options_.settle.count()))
        type = Type::close_wait;
      else if (!options_.strict) {
        ++not_findings_;
        continue;
      }
    } else if (inherited && (tcp_in(*fd, TcpState::listen) || tcp_in(*fd, TcpState::established)) &&
               info.crossed.contains(ident(id)) && !held_by_others(pid, ident(id))) {
      // Handed down by a parent that has closed it, through an exec that the
      // program it runs knows nothing of. (A process that execs in place
      // keeps its own fds on purpose: `exec 3<>/dev/tcp/...; exec client`.)
      type = Type::held_after_close;
    } else if (!options_.strict) {
      ++not_findings_;
      continue;
    }
    // Already in CLOSE_WAIT when its listener closed: found then, held now.
    Finding f;
    if (type == Type::close_wait && found != candidates_.end()) {
      f = std::move(found->finding);
      candidates_.erase(found);
      auto opened = std::move(f.fd.opened);  // found when its listener closed
      f.fd = std::move(*fd);
      f.fd.opened = std::move(opened);
    } else {
      f = make(type, When::exit, pid, *p, std::move(*fd));
    }
    f.fate = Fate::held_at_exit;
    f.eof_read = eof_read;
    if (inherited) {
      f.inherited_from = info.parent;
      f.parent_command = processes_[info.parent].command;
      f.parent_exe = processes_[info.parent].exe;
    }
    add(std::move(f));
  }
  if (options_.open_sites)
    for (auto& b : bad_closes(&info.bad_closes_seen, pid))
      double_closes_.push_back({pid, info.command, exe_of(pid), std::move(b)});
  // This process's remaining candidates were closed before it exited.
  std::erase_if(candidates_, [&](const Candidate& c) {
    if (c.finding.pid != pid) return false;
    ++settled_;
    return true;
  });
}

void Tracer::on_close(pid_t tid) {
  __ptrace_syscall_info call{};
  if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, sizeof call, &call) <= 0 ||
      call.op != PTRACE_SYSCALL_INFO_SECCOMP)
    return;
  const int number = static_cast<int>(call.seccomp.args[0]);
  const pid_t pid = tasks_[tid];
  char target[64];
  auto link = "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(number);
  auto n = readlink(link.c_str(), target, sizeof target);
  if (n < 8 || std::strncmp(target, "socket:[", 8) != 0) return;  // the cheap common case
  auto closer = Process::open(pid);
  auto fd = closer ? closer->inspect(number) : std::nullopt;
  if (!fd) return;
  // A socket found at a listener's close, closed now: that is its fate.
  if (auto* f = find(pid, number, ident(*fd)); f && f->fate == Fate::unknown) {
    f->fate = Fate::closed;
    f->closed_after = now() - f->seconds;
  }
  if (auto c = candidate(pid, *fd); c != candidates_.end()) {
    candidates_.erase(c);
    ++settled_;
  }
  if (!tcp_in(*fd, TcpState::listen)) return;
  // The listener closes only if nothing else holds it (a dup, a child).
  for (const auto& id : closer->fds())
    if (id.number != number && ident(id) == ident(*fd)) return;
  if (held_by_others(pid, ident(*fd))) return;
  on_listener_close(pid, fd->socket->local);
}

// Events from the kernel, oldest first: a listener's close waits for its
// closer's stop (the SIGSTOP the kernel sent it right after the close); a
// socket in CLOSE_WAIT that closed is the fate of what was found.
void Tracer::drain_events() {
  if (!events_) return;
  for (auto& ev : events_->drain()) {
    if (ev.kind == CloseEvents::Kind::close_wait_closed) on_close_wait_closed(ev);
    else if (tasks_.contains(ev.tid)) pending_[ev.tid].push_back(std::move(ev));
  }
}

// tid is stopped right after the close(2) (or close_range, dup2, exec) that
// closed its process's last reference to the listeners it closed.
void Tracer::on_listener_stop(pid_t tid) {
  auto events = std::move(pending_[tid]);
  pending_.erase(tid);
  for (const auto& ev : events) on_listener_close(tasks_[tid], ev.local);
  sync_interest();
}

std::uint16_t port_of(const std::string& address) {
  auto port = split_address(address).second;
  return port.empty() ? 0 : static_cast<std::uint16_t>(std::strtoul(port.c_str(), nullptr, 10));
}

// A process marked by sync_interest closed a socket in CLOSE_WAIT (its last
// reference): the fate of what was found at a listener's close with those
// ports, if that fd is gone from the process (a reset the peer sent moves
// a socket from CLOSE_WAIT to CLOSE too, and it is still held).
void Tracer::on_close_wait_closed(const CloseEvents::Event& ev) {
  if (!processes_.contains(ev.tgid)) return;
  auto gone = [&](const Fd& fd) {
    char target[64];
    auto link = "/proc/" + std::to_string(ev.tgid) + "/fd/" + std::to_string(fd.number);
    auto n = readlink(link.c_str(), target, sizeof target);
    return n <= 0 || std::string(target, static_cast<std::size_t>(n)) != fd.target;
  };
  auto same = [&](const Finding& f) {
    return f.pid == ev.tgid && f.fd.socket && port_of(f.fd.socket->local) == ev.local_port &&
           port_of(f.fd.socket->peer) == ev.peer_port && gone(f.fd);
  };
  auto at = std::chrono::duration<double>(std::chrono::nanoseconds(ev.monotonic_ns) -
                                          start_.time_since_epoch()).count();
  for (auto& f : findings_)
    if (f.when == When::listener_close && f.fate == Fate::unknown && same(f)) {
      f.fate = Fate::closed;
      f.closed_after = std::max(at - f.seconds, 0.0);
    }
  std::erase_if(candidates_, [&](const Candidate& c) {
    if (!same(c.finding)) return false;
    ++settled_;
    return true;
  });
  sync_interest();
}

void Tracer::watch(pid_t pid, std::uint32_t interest) {
  if (!events_) return;
  if (interest == 0) {
    interest_.erase(pid);
  } else {
    if (interest_.contains(pid) && interest_[pid] == interest) return;
    interest_[pid] = interest;
  }
  events_->watch(pid, interest);
}

// A process with a socket found at a listener's close (a candidate, or a
// finding whose fate is not known yet) has its closes of sockets in
// CLOSE_WAIT reported; no other process has.
void Tracer::sync_interest() {
  if (!events_) return;
  std::set<pid_t> want;
  for (const auto& c : candidates_) want.insert(c.finding.pid);
  for (const auto& f : findings_)
    if (f.when == When::listener_close && f.fate == Fate::unknown) want.insert(f.pid);
  for (auto& [pid, interest] : interest_) {
    auto now = CloseEvents::listener_closes | (want.contains(pid) ? CloseEvents::close_wait_closes : 0u);
    if (now != interest) events_->watch(pid, interest = now);
  }
}

// A server stops: a socket of its listener in CLOSE_WAIT (a session of this
// server, or a client of it whose connection the server closed) is a finding
// if it outlives the close by --settle, or is held when its process exits.
void Tracer::on_listener_close(pid_t pid, const std::string& address) {
  auto closer_command = processes_[pid].command;
  std::map<ino_t, std::map<ino_t, std::uint32_t>> queues;  // by network namespace
  for (const auto& [holder, info] : processes_) {
    if (!alive(holder)) continue;
    auto p = Process::open(holder);
    if (!p) continue;
    // Its closes of sockets in CLOSE_WAIT from now on (sync_interest keeps
    // this only if something is found).
    if (events_ && interest_.contains(holder))
      watch(holder, interest_[holder] | CloseEvents::close_wait_closes);
    struct stat ns{};
    stat(("/proc/" + std::to_string(holder) + "/ns/net").c_str(), &ns);
    for (const auto& id : p->fds()) {
      if (!is_socket(id) || is_stdio(id.number) || baseline_.contains(ident(id))) continue;
      if (find(holder, id.number, ident(id))) continue;
      auto fd = p->inspect(id.number);
      if (!fd || !in_close_wait(*fd)) continue;
      bool client = on_listener(address, fd->socket->peer);
      if (!client && !on_listener(address, fd->socket->local)) continue;  // another server's: checked at exit
      auto f = make(Type::close_wait, When::listener_close, holder, *p, std::move(*fd));
      f.closer = pid;
      f.closer_command = closer_command;
      f.listener = address;
      f.client = client;
      if (!queues.contains(ns.st_ino)) queues[ns.st_ino] = receive_queues(holder);
      auto q = queues[ns.st_ino].find(f.fd.inode);
      f.eof_read = q != queues[ns.st_ino].end() && q->second == 0;
      // A server's session may be in the middle of its own close (a TLS
      // shutdown with a deadline, a FIN not read yet) and stop() closes it
      // next; a test's client that read the EOF is closed when the test's
      // scope ends, a moment after the server it stopped: --settle decides.
      if (options_.settle.count() == 0) {
        add(std::move(f));
      } else if (candidate(holder, f.fd) == candidates_.end()) {
        candidates_.push_back({std::move(f), clock::now() + options_.settle});
      }
    }
  }
}

// Candidates whose --settle has passed (or all of them): still held in
// CLOSE_WAIT is a finding; anything else settled.
void Tracer::settle_candidates(bool all) {
  auto t = clock::now();
  std::vector<Candidate> keep;
  for (auto& c : candidates_) {
    if (!all && c.deadline > t) {
      keep.push_back(std::move(c));
      continue;
    }
    auto p = alive(c.finding.pid) ? Process::open(c.finding.pid) : std::nullopt;
    auto fd = p ? p->inspect(c.finding.fd.number) : std::nullopt;
    if (fd && ident(*fd) == ident(c.finding.fd) && in_close_wait(*fd)) {
      c.finding.fd = std::move(*fd);
      add(std::move(c.finding));
    } else {
      ++settled_;
    }
  }
  candidates_ = std::move(keep);
}

void Tracer::add(Finding f) {
  auto line = describe(f.fd);
  auto ignored = [&] {
    for (const auto& pattern : options_.ignore)
      if (fnmatch(pattern.c_str(), f.fd.target.c_str(), 0) == 0 ||
          fnmatch(pattern.c_str(), line.c_str(), 0) == 0)
        return true;
    return std::any_of(ignore_opened_in_.begin(), ignore_opened_in_.end(),
                       [&](const Predicate& p) { return p(f.fd); });
  };
  if (ignored()) {
    ++ignored_;
    return;
  }
  findings_.push_back(std::move(f));
}

// Where f's fd was opened, read from pid's open-site table while pid still exists.
void Tracer::find_site(pid_t pid, Finding& f) const {
  if (!options_.open_sites) return;
  std::vector<Fd> one{f.fd};
  find_open_sites(one, pid);
  f.fd.opened = std::move(one[0].opened);
  if (f.fd.opened.known() || !f.crossed_exec) return;
  // Opened before the exec: in the parent that handed it down, if that parent
  // is still there (its table keeps the open of what it has closed since).
  auto parent = processes_.count(pid) ? processes_.at(pid).parent : 0;
  if (parent && alive(parent)) {
    find_open_sites(one, parent, true);
    if (one[0].opened.known()) {
      f.fd.opened = std::move(one[0].opened);
      f.fd.opened.note = "opened by pid " + std::to_string(parent) + " (" + processes_.at(parent).command +
                         "), which handed it down";
      return;
    }
  }
  f.fd.opened.unknown = "opened before pid " + std::to_string(pid) +
                        "'s exec, by the program it was then; an open-site table does not survive exec";
}

// libclosecheck_sites.so, to preload: $CLOSECHECK_SITES_LIB, beside an installed
// closecheck (bin/../lib), or the build tree's.
std::string sites_library() {
  if (const char* e = std::getenv("CLOSECHECK_SITES_LIB")) return e;
  auto self = exe_of(getpid());
  auto bin = self.substr(0, self.rfind('/'));
  for (std::string candidate : {bin + "/../" CLOSECHECK_INSTALL_LIBDIR "/libclosecheck_sites.so",
                                std::string(CLOSECHECK_BUILD_SITES_LIB)})
    if (access(candidate.c_str(), R_OK) == 0) return candidate;
  return {};
}

int Tracer::run() {
  for (const auto& glob : options_.ignore_opened_in) ignore_opened_in_.push_back(ignore_opened_in(glob));
  if (options_.open_sites) {
    auto lib = sites_library();
    if (lib.empty())
      throw Error("libclosecheck_sites.so not found (set CLOSECHECK_SITES_LIB, or --open-sites off)");
    const char* old = std::getenv("LD_PRELOAD");
    // The program's environment; closecheck itself is past its own exec.
    setenv("LD_PRELOAD", (old && *old ? lib + ":" + old : lib).c_str(), 1);
    // A program built with -fsanitize=address wants its runtime first; the
    // recorder before it passes each call on to ASan's interceptors.
    const char* asan = std::getenv("ASAN_OPTIONS");
    setenv("ASAN_OPTIONS",
           ((asan && *asan ? std::string(asan) + ":" : std::string()) + "verify_asan_link_order=0").c_str(), 1);
  }
  // How a listener's close is seen: in the kernel (CloseEvents) where it can
  // be, else a seccomp filter that stops every close(2).
  std::string trap = std::getenv("CLOSECHECK_CLOSE_TRAP") ? std::getenv("CLOSECHECK_CLOSE_TRAP") : "auto";
  if (trap != "auto" && trap != "bpf" && trap != "seccomp")
    throw Error("CLOSECHECK_CLOSE_TRAP: '" + trap + "' is not one of auto, bpf, seccomp");
  if (trap != "seccomp") {
    std::string why_not;
    events_ = CloseEvents::open(why_not);
    if (!events_ && trap == "bpf") throw Error("CLOSECHECK_CLOSE_TRAP=bpf: " + why_not);
  }
  std::function<int()> in_child;
  if (!events_) in_child = install_close_trap;
  root_ = spawn(options_.argv, in_child, [&](pid_t pid) {
    if (ptrace(PTRACE_SEIZE, pid, 0, trace_options) != 0)
      throw Error("cannot trace the program: ptrace: " + std::string(std::strerror(errno)));
    watch(pid, CloseEvents::listener_closes);
  });
#if defined(__x86_64__) || defined(__aarch64__)
  close_trap_ = events_ ? "bpf" : "seccomp";
#else
  close_trap_ = events_ ? "bpf" : "none";
#endif
  start_ = clock::now();
  tasks_[root_] = root_;
  int signals = signalfd(-1, &handled_signals(), SFD_CLOEXEC | SFD_NONBLOCK);
  if (signals < 0) throw Error(std::string("signalfd: ") + std::strerror(errno));
  std::optional<clock::time_point> deadline;  // for children still running after the program
  bool killed = false;
  while (!tasks_.empty()) {
    for (;;) {
      int status = 0;
      pid_t tid = waitpid(-1, &status, __WALL | WNOHANG);
      if (tid < 0 && errno == ECHILD) tasks_.clear();
      if (tid <= 0) break;
      drain_events();  // what happened before this stop, first
      handle(tid, status);
    }
    drain_events();
    settle_candidates(false);
    sync_interest();
    if (tasks_.empty()) break;
    auto now = clock::now();
    auto wake = now + std::chrono::milliseconds(1000);
    for (const auto& c : candidates_) wake = std::min(wake, c.deadline);
    if (root_status_) {
      if (!deadline) deadline = now + options_.grace;
      if (now >= *deadline && !killed) {
        for (const auto& [tid, pid] : tasks_)
          if (tid == pid) {
            std::fprintf(stderr, "closecheck: pid %d (%s) still running %lld ms after the program exited: killed\n",
                         pid, processes_[pid].command.c_str(),
                         static_cast<long long>(options_.grace.count()));
            kill(pid, SIGKILL);
          }
        killed = true;
      }
      if (!killed) wake = std::min(wake, *deadline);
    }
    auto timeout = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(wake - now),
                            std::chrono::milliseconds(0)) + std::chrono::milliseconds(1);
    pollfd wait[2] = {{signals, POLLIN, 0}, {events_ ? events_->fd() : -1, POLLIN, 0}};
    poll(wait, 2, static_cast<int>(timeout.count()));
    signalfd_siginfo got{};
    while (read(signals, &got, sizeof got) == static_cast<ssize_t>(sizeof got)) {
      siginfo_t info{};
      info.si_signo = static_cast<int>(got.ssi_signo);
      info.si_code = got.ssi_code;
      int sig = info.si_signo;
      if (sig == SIGCHLD || !should_forward(info)) continue;
      if (!root_status_) kill(root_, sig);
      else  // the program is gone: its children still running get the signal
        for (const auto& [tid, pid] : tasks_)
          if (tid == pid) kill(pid, sig);
    }
  }
  close(signals);
  settle_candidates(true);

  auto report = options_.json ? json_report() : text_report();
  if (options_.output.empty()) {
    std::fputs(report.c_str(), stderr);
  } else {
    std::ofstream out(options_.output);
    out << report;
    if (!out) throw Error(options_.output + ": cannot write the report");
  }
  return status();
}

bool Tracer::fails(const Finding& f) const {
  switch (options_.fail_on) {
    case FailOn::findings:
    case FailOn::leaks: return true;
    case FailOn::close_wait: return f.type == Type::close_wait;
    case FailOn::none: return false;
  }
  return true;
}

int Tracer::status() const {
  if (!root_status_) return 2;
  if (int s = exit_status(*root_status_); s != 0) return s;  // the program's own failure
  return std::any_of(findings_.begin(), findings_.end(), [&](const Finding& f) { return fails(f); }) ||
                 (closes_fail() && !double_closes_.empty())
             ? 1
             : 0;
}

// Every line of text, with closecheck's prefix.
std::string prefixed(const std::string& text) {
  std::string out;
  for (std::size_t at = 0; at < text.size();) {
    auto end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    out += "closecheck: " + text.substr(at, end - at) + "\n";
    at = end + 1;
  }
  return out;
}

std::string ms(double seconds) { return std::to_string(static_cast<long long>(seconds * 1000 + 0.5)) + " ms"; }

// Why a finding matters, in one sentence.
std::string Tracer::why(const Finding& f) const {
  const auto& s = f.fd.socket;
  std::string peer = s && !s->peer.empty() ? s->peer : "the peer";
  switch (f.type) {
    case Type::close_wait: {
      auto seen = f.eof_read ? std::string(" (it read the EOF)") : std::string(" (it never read the EOF)");
      if (f.when == When::listener_close && f.client)
        return "its server " + process_name(f.closer, f.closer_command) +
               " had closed this connection and is stopping; this process kept the dead connection" + seen;
      if (f.when == When::listener_close)
        return "client " + peer + " hung up and the server kept this session" + seen + " past its listener's close";
      return peer + " hung up and this process never closed its end" + seen + ": no FIN went back until it exited";
    }
    case Type::held_after_close:
      if (s && s->state == TcpState::listen)
        return "every other holder closed this listener, but this process got it across exec and kept it: "
               "port " + s->local + " stayed bound, connections queued unanswered, until it exited";
      return "every other holder closed this connection, but this process got it across exec and kept it: " +
             peer + " got no FIN until it exited";
    case Type::held_at_exit:
      return f.crossed_exec ? "still open at exit; it came through exec without close-on-exec"
                            : "still open at exit";
  }
  return "";
}

std::string fate(const Finding& f) {
  switch (f.fate) {
    case Fate::held_at_exit:
      return f.when == When::exit ? "" : "still held when pid " + std::to_string(f.pid) + " exited";
    case Fate::closed:
      return "closed by pid " + std::to_string(f.pid) + " " + ms(f.closed_after) + " later";
    case Fate::unknown: return "";
  }
  return "";
}

std::string Tracer::text_report() const {
  std::string out;
  std::size_t close_wait = 0, later = 0, later_held = 0;
  for (std::size_t i = 0; i < findings_.size(); ++i) {
    const auto& f = findings_[i];
    close_wait += in_close_wait(f.fd);
    later += f.when != When::exit;
    later_held += f.when != When::exit && f.fate == Fate::held_at_exit;
    // A heading for each run of findings from the same process and checkpoint.
    auto same = [&](const Finding& g) {
      return g.pid == f.pid && g.when == f.when && g.closer == f.closer && g.listener == f.listener;
    };
    if (i == 0 || !same(findings_[i - 1])) {
      std::size_t n = 0;
      for (auto j = i; j < findings_.size() && same(findings_[j]); ++j) ++n;
      auto count = std::to_string(n) + " ";
      if (f.when == When::exit)
        out += "closecheck: " + process_name(f.pid, f.command) + " exited holding " + count +
               (n == 1 ? "fd" : "fds") + ":\n";
      else
        out += "closecheck: " + process_name(f.pid, f.command) + " held " + count +
               (n == 1 ? "socket" : "sockets") + " in CLOSE_WAIT when pid " +
               std::to_string(f.closer) + " closed its listener " + f.listener + ":\n";
    }
    out += "closecheck:   " + describe(f.fd);
    if (f.inherited_from)
      out += "  (inherited from " + process_name(f.inherited_from, f.parent_command) +
             ", which closed it)";
    out += "\n";
    auto w = why(f);
    if (auto then = fate(f); !then.empty()) w += "; " + then;
    out += "closecheck:     " + std::string(type_name(f.type)) + ": " + w + "\n";
    out += prefixed(site_lines(f.fd.opened, "opened", options_.frames));
  }
  for (const auto& d : double_closes_)
    out += "closecheck: " + process_name(d.pid, d.command) + ": double-close: " +
           prefixed(describe(d.close, options_.frames)).substr(std::strlen("closecheck: "));
  if (later)
    out += "closecheck: at exit: " + std::to_string(later_held) + " of the " + std::to_string(later) +
           " found at a listener's close still held, " + std::to_string(later - later_held) +
           " closed before\n";
  auto processes = std::to_string(checked_) + (checked_ == 1 ? " process" : " processes");
  auto total = findings_.size() + (closes_fail() ? double_closes_.size() : 0);
  if (total == 0)
    out += "closecheck: no findings (" + processes + " checked";
  else
    out += "closecheck: " + std::to_string(total) + (total == 1 ? " finding" : " findings") + " (" +
           processes + " checked, " + std::to_string(close_wait) + " in CLOSE_WAIT" +
           (double_closes_.empty() || !closes_fail()
                ? std::string()
                : ", " + std::to_string(double_closes_.size()) + " double close" + (double_closes_.size() == 1 ? "" : "s"));
  if (ignored_) out += ", " + std::to_string(ignored_) + " ignored";
  if (!double_closes_.empty() && !closes_fail())
    out += "; " + std::to_string(double_closes_.size()) + " double close" + (double_closes_.size() == 1 ? "" : "s") +
           " above, not failing: --fail-on leaks fails on them";
  if (not_findings_)
    out += "; " + std::to_string(not_findings_) + " other fd" + (not_findings_ == 1 ? "" : "s") +
           " held at exit, not findings: --strict lists them";
  if (settled_)
    out += "; " + std::to_string(settled_) + " socket" + (settled_ == 1 ? "" : "s") +
           " in CLOSE_WAIT at a listener's close closed within --settle " +
           ms(options_.settle.count() / 1000.0) + ": --settle 0 reports them";
  return out + ")\n";
}

std::string Tracer::json_report() const {
  using detail::json_string;
  std::string j = "{\"command\":[";
  for (std::size_t i = 0; i < options_.argv.size(); ++i) j += (i ? "," : "") + json_string(options_.argv[i]);
  j += "],\"exit\":";
  if (root_status_ && WIFSIGNALED(*root_status_))
    j += "{\"signal\":" + std::to_string(WTERMSIG(*root_status_)) + "}";
  else
    j += "{\"code\":" + std::to_string(root_status_ ? exit_status(*root_status_) : -1) + "}";
  j += ",\"status\":" + std::to_string(status()) + ",\"strict\":" + (options_.strict ? "true" : "false") +
       ",\"processes\":" + std::to_string(checked_) + ",\"ignored\":" + std::to_string(ignored_) +
       ",\"not_findings\":" + std::to_string(not_findings_) + ",\"settled\":" + std::to_string(settled_) +
       ",\"close_trap\":" + json_string(close_trap_) +
       ",\"findings\":[";
  for (std::size_t i = 0; i < findings_.size(); ++i) {
    const auto& f = findings_[i];
    j += std::string(i ? "," : "") + "{\"type\":" + json_string(type_name(f.type)) +
         ",\"pid\":" + std::to_string(f.pid) + ",\"command\":" + json_string(f.command) +
         ",\"exe\":" + json_string(f.exe) + ",\"when\":" +
         json_string(f.when == When::exit ? "exit" : "listener-close") +
         ",\"close_wait\":" + (in_close_wait(f.fd) ? "true" : "false") +
         ",\"eof_read\":" + (f.eof_read ? "true" : "false") +
         ",\"crossed_exec\":" + (f.crossed_exec ? "true" : "false") +
         ",\"fails\":" + (fails(f) ? "true" : "false") + ",\"why\":" + json_string(why(f));
    char at[32];
    std::snprintf(at, sizeof at, "%.3f", f.seconds);
    j += ",\"at_s\":" + std::string(at);
    if (f.inherited_from)
      j += ",\"inherited_from\":{\"pid\":" + std::to_string(f.inherited_from) +
           ",\"command\":" + json_string(f.parent_command) + ",\"exe\":" + json_string(f.parent_exe) + "}";
    if (f.when == When::listener_close) {
      j += ",\"listener\":{\"pid\":" + std::to_string(f.closer) +
           ",\"command\":" + json_string(f.closer_command) + ",\"local\":" + json_string(f.listener) +
           ",\"side\":" + json_string(f.client ? "client" : "server") + "}";
      j += ",\"fate\":";
      if (f.fate == Fate::held_at_exit) j += "\"held-at-exit\"";
      else if (f.fate == Fate::closed) j += "{\"closed_after_ms\":" + std::to_string(static_cast<long long>(f.closed_after * 1000 + 0.5)) + "}";
      else j += "null";
    }
    j += ",\"fd\":" + to_json(f.fd) + "}";
  }
  j += "],\"double_closes\":[";
  for (std::size_t i = 0; i < double_closes_.size(); ++i) {
    const auto& d = double_closes_[i];
    j += std::string(i ? "," : "") + "{\"pid\":" + std::to_string(d.pid) + ",\"command\":" + json_string(d.command) +
         ",\"exe\":" + json_string(d.exe) + ",\"fd\":" + std::to_string(d.close.fd) +
         ",\"more\":" + std::to_string(d.close.more) + ",\"fails\":" + (closes_fail() ? "true" : "false") +
         ",\"closed_now\":" + detail::frames_json(d.close.closed_now) +
         ",\"closed_before\":" + detail::frames_json(d.close.closed_before) +
         ",\"opened\":" + detail::frames_json(d.close.opened) + "}";
  }
  return j + "]}\n";
}

}  // namespace

int run(const RunOptions& options) { return Tracer(options).run(); }

}  // namespace closecheck::cli
