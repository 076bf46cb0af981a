// closecheck run: follows a program and its children with ptrace and checks
// their fds at two checkpoints:
//   - each process's exit (PTRACE_EVENT_EXIT, before the kernel closes its fds):
//     everything it still holds, minus what the program was started with;
//   - each close(2) of a listening TCP socket (a server stopping; a seccomp
//     filter stops only that syscall): every socket any of them holds in CLOSE_WAIT.
// Another process's fd is classified by duplicating it with pidfd_getfd(2)
// and running the harness's own inspect() on the copy (closecheck::Process).
#include <fnmatch.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "format.hpp"
#include "cli.hpp"
#include "closecheck/closecheck.hpp"
#include "closecheck/process.hpp"

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

std::set<Ident> identities(pid_t pid) {
  std::set<Ident> out;
  if (auto p = Process::open(pid))
    for (const auto& fd : p->fds()) out.insert(ident(fd));
  return out;
}

bool in_close_wait(const Fd& fd) {
  return fd.socket && fd.socket->is_tcp() && fd.socket->state == TcpState::close_wait;
}

enum class When { exit, listener_close };

struct Finding {
  pid_t pid = 0;
  std::string command;
  When when = When::exit;
  Fd fd;
  pid_t inherited_from = 0;  // the parent it came from, which has closed it
  std::string parent_command;
  pid_t closer = 0;          // listener_close: who closed which listener
  std::string listener;
};

struct ProcessInfo {
  pid_t parent = 0;
  std::string command;
  std::set<Ident> inherited;  // the parent's fds when it forked this one
};

class Tracer {
 public:
  explicit Tracer(const RunOptions& options) : options_(options) {}
  int run();

 private:
  void handle(pid_t tid, int status);
  void on_new_task(pid_t tid);
  void on_exec(pid_t tid);
  void on_exit(pid_t pid);
  void on_close(pid_t tid);
  void add(Finding f);
  bool alive(pid_t pid) const { return tasks_.contains(pid) && tasks_.at(pid) == pid; }
  std::string text_report() const;
  std::string json_report() const;
  int status() const;

  const RunOptions& options_;
  pid_t root_ = 0;
  std::optional<int> root_status_;
  std::map<pid_t, pid_t> tasks_;  // every traced thread -> its process (tgid)
  std::map<pid_t, ProcessInfo> processes_;
  std::set<Ident> baseline_;      // what the program had at exec: stdio and the caller's fds
  bool have_baseline_ = false;
  std::vector<Finding> findings_;
  std::set<std::tuple<pid_t, int, dev_t, ino_t>> reported_;
  std::size_t ignored_ = 0, checked_ = 0;
};

void Tracer::handle(pid_t tid, int status) {
  if (WIFEXITED(status) || WIFSIGNALED(status)) {
    if (tid == root_) root_status_ = status;
    tasks_.erase(tid);
    return;
  }
  if (!WIFSTOPPED(status)) return;
  if (!tasks_.contains(tid)) tasks_[tid] = read_tgid(tid);  // seen before its parent's event
  int sig = WSTOPSIG(status);
  int inject = 0;
  switch (status >> 16) {
    case 0: inject = sig; break;  // a signal for the program: deliver it
    case PTRACE_EVENT_STOP:
      if (sig != SIGTRAP) {       // a group-stop (SIGSTOP, SIGTSTP...): stay stopped
        ptrace(PTRACE_LISTEN, tid, 0, 0);
        return;
      }
      break;                      // a new task's first stop
    case PTRACE_EVENT_FORK:
    case PTRACE_EVENT_VFORK:
    case PTRACE_EVENT_CLONE: on_new_task(tid); break;
    case PTRACE_EVENT_EXEC: on_exec(tid); break;
    case PTRACE_EVENT_EXIT:
      if (tasks_[tid] == tid) on_exit(tid);  // only the thread-group leader's exit
      break;
    case PTRACE_EVENT_SECCOMP: on_close(tid); break;
  }
  ptrace(PTRACE_CONT, tid, 0, inject);
}

void Tracer::on_new_task(pid_t tid) {
  unsigned long msg = 0;
  ptrace(PTRACE_GETEVENTMSG, tid, 0, &msg);
  auto child = static_cast<pid_t>(msg);
  auto tgid = read_tgid(child);
  tasks_[child] = tgid;
  if (tgid != child) return;  // a thread
  auto parent = tasks_[tid];
  auto& info = processes_[child];
  info.parent = parent;
  info.command = processes_[parent].command;
  info.inherited = identities(parent);  // the parent is stopped: its table is the child's
}

void Tracer::on_exec(pid_t tid) {
  unsigned long former = 0;
  ptrace(PTRACE_GETEVENTMSG, tid, 0, &former);
  if (static_cast<pid_t>(former) != tid) tasks_.erase(static_cast<pid_t>(former));
  tasks_[tid] = tid;
  if (tid == root_ && !have_baseline_) {
    baseline_ = identities(tid);
    have_baseline_ = true;
  }
  if (auto p = Process::open(tid)) processes_[tid].command = p->command();
}

void Tracer::on_exit(pid_t pid) {
  auto p = Process::open(pid);
  if (!p) return;
  ++checked_;
  auto& info = processes_[pid];
  info.command = p->command();
  std::optional<std::set<Ident>> parent_now;
  for (const auto& id : p->fds()) {
    if (baseline_.contains(ident(id))) continue;
    auto fd = p->inspect(id.number);
    if (!fd) continue;
    Finding f;
    f.pid = pid;
    f.command = info.command;
    f.fd = std::move(*fd);
    if (info.parent && info.inherited.contains(ident(id))) {
      if (!parent_now) parent_now = alive(info.parent) ? identities(info.parent) : std::set<Ident>{};
      if (!parent_now->contains(ident(id))) {
        f.inherited_from = info.parent;
        f.parent_command = processes_[info.parent].command;
      }
    }
    add(std::move(f));
  }
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
  auto listener = closer ? closer->inspect(number) : std::nullopt;
  if (!listener || !listener->socket || !listener->socket->is_tcp() ||
      listener->socket->state != TcpState::listen)
    return;
  for (const auto& [holder, info] : processes_) {
    if (!alive(holder)) continue;
    auto p = Process::open(holder);
    if (!p) continue;
    for (const auto& id : p->fds()) {
      if (!id.target.starts_with("socket:[") || baseline_.contains(ident(id))) continue;
      auto fd = p->inspect(id.number);
      if (!fd || !in_close_wait(*fd)) continue;
      Finding f;
      f.pid = holder;
      f.command = p->command();
      f.when = When::listener_close;
      f.fd = std::move(*fd);
      f.closer = pid;
      f.listener = listener->socket->local;
      add(std::move(f));
    }
  }
}

void Tracer::add(Finding f) {
  if (!reported_.insert({f.pid, f.fd.number, f.fd.device, f.fd.inode}).second) return;
  auto line = describe(f.fd);
  for (const auto& pattern : options_.ignore)
    if (fnmatch(pattern.c_str(), f.fd.target.c_str(), 0) == 0 ||
        fnmatch(pattern.c_str(), line.c_str(), 0) == 0) {
      ++ignored_;
      return;
    }
  findings_.push_back(std::move(f));
}

int Tracer::run() {
  root_ = spawn(options_.argv, install_close_trap, [](pid_t pid) {
    if (ptrace(PTRACE_SEIZE, pid, 0, trace_options) != 0)
      throw Error("cannot trace the program: ptrace: " + std::string(std::strerror(errno)));
  });
  tasks_[root_] = root_;
  std::optional<clock::time_point> deadline;  // for children still running after the program
  bool killed = false;
  while (!tasks_.empty()) {
    for (;;) {
      int status = 0;
      pid_t tid = waitpid(-1, &status, __WALL | WNOHANG);
      if (tid < 0 && errno == ECHILD) tasks_.clear();
      if (tid <= 0) break;
      handle(tid, status);
    }
    if (tasks_.empty()) break;
    auto timeout = std::chrono::milliseconds(1000);
    if (root_status_) {
      auto now = clock::now();
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
      if (!killed)
        timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now) +
                  std::chrono::milliseconds(1);
    }
    timespec ts{static_cast<time_t>(timeout.count() / 1000),
                static_cast<long>(timeout.count() % 1000) * 1000000};
    siginfo_t info{};
    int sig = sigtimedwait(&handled_signals(), &info, &ts);
    if (sig > 0 && sig != SIGCHLD && should_forward(info)) {
      if (!root_status_) kill(root_, sig);
      else  // the program is gone: its children still running get the signal
        for (const auto& [tid, pid] : tasks_)
          if (tid == pid) kill(pid, sig);
    }
  }

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

int Tracer::status() const {
  if (!root_status_) return 2;
  if (int s = exit_status(*root_status_); s != 0) return s;  // the program's own failure
  bool fail = false;
  for (const auto& f : findings_)
    fail = fail || options_.fail_on == FailOn::leaks ||
           (options_.fail_on == FailOn::close_wait && in_close_wait(f.fd));
  return fail ? 1 : 0;
}

std::string process_name(pid_t pid, const std::string& command) {
  return "pid " + std::to_string(pid) + " (" + command + ")";
}

std::string Tracer::text_report() const {
  std::string out;
  std::size_t close_wait = 0;
  for (std::size_t i = 0; i < findings_.size(); ++i) {
    const auto& f = findings_[i];
    close_wait += in_close_wait(f.fd);
    // A heading for each run of findings from the same process and checkpoint.
    if (i == 0 || findings_[i - 1].pid != f.pid || findings_[i - 1].when != f.when) {
      std::size_t n = 0;
      for (auto j = i; j < findings_.size() && findings_[j].pid == f.pid && findings_[j].when == f.when; ++j) ++n;
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
  }
  auto processes = std::to_string(checked_) + (checked_ == 1 ? " process" : " processes");
  if (findings_.empty())
    out += "closecheck: no findings (" + processes + " checked";
  else
    out += "closecheck: " + std::to_string(findings_.size()) +
           (findings_.size() == 1 ? " finding" : " findings") + " (" + processes + " checked, " +
           std::to_string(close_wait) + " in CLOSE_WAIT";
  if (ignored_) out += ", " + std::to_string(ignored_) + " ignored";
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
  j += ",\"status\":" + std::to_string(status()) + ",\"processes\":" + std::to_string(checked_) +
       ",\"ignored\":" + std::to_string(ignored_) + ",\"findings\":[";
  for (std::size_t i = 0; i < findings_.size(); ++i) {
    const auto& f = findings_[i];
    j += std::string(i ? "," : "") + "{\"pid\":" + std::to_string(f.pid) +
         ",\"command\":" + json_string(f.command) + ",\"when\":" +
         json_string(f.when == When::exit ? "exit" : "listener-close") +
         ",\"close_wait\":" + (in_close_wait(f.fd) ? "true" : "false");
    if (f.inherited_from)
      j += ",\"inherited_from\":{\"pid\":" + std::to_string(f.inherited_from) +
           ",\"command\":" + json_string(f.parent_command) + "}";
    if (f.when == When::listener_close)
      j += ",\"listener\":{\"pid\":" + std::to_string(f.closer) +
           ",\"local\":" + json_string(f.listener) + "}";
    j += ",\"fd\":" + to_json(f.fd) + "}";
  }
  return j + "]}\n";
}

}  // namespace

int run(const RunOptions& options) { return Tracer(options).run(); }

}  // namespace closecheck::cli
