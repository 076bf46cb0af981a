// Starting the program: PATH search, exec errors reported through a pipe.
#include <fcntl.h>
#include <poll.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "cli.hpp"

namespace closecheck::cli {

namespace {

// What execvp would run, or an Error naming why not.
std::string resolve(const std::string& name) {
  auto check = [&](const std::string& path) -> int {
    struct stat st{};
    if (stat(path.c_str(), &st) != 0) return errno;
    if (S_ISDIR(st.st_mode)) return EISDIR;
    return access(path.c_str(), X_OK) == 0 ? 0 : errno;
  };
  if (name.find('/') != std::string::npos) {
    if (int e = check(name)) throw Error(name + ": " + std::strerror(e));
    return name;
  }
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  int found_but = 0;
  for (std::size_t start = 0; start <= dirs.size();) {
    auto end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    int e = check(candidate);
    if (e == 0) return candidate;
    if (e != ENOENT && e != ENOTDIR) found_but = e;
    start = end + 1;
  }
  if (found_but) throw Error(name + ": " + std::strerror(found_but));
  throw Error(name + ": command not found");
}

}  // namespace

const sigset_t& handled_signals() {
  static const sigset_t set = [] {
    sigset_t s;
    sigemptyset(&s);
    for (int sig : {SIGCHLD, SIGINT, SIGTERM, SIGHUP}) sigaddset(&s, sig);
    return s;
  }();
  return set;
}

bool should_forward(const siginfo_t& info) {
  return info.si_signo != SIGCHLD && info.si_code <= 0;  // SI_USER, SI_QUEUE, SI_TKILL
}

int exit_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 2;
}

namespace {

// Waits for a child that is going away. A traced task may be stopped at its
// exit event, which SIGKILL does not end, and so may any thread it started:
// continue every stopped task until the child itself is reaped.
void reap(pid_t pid) {
  int status;
  for (pid_t task; (task = waitpid(-1, &status, __WALL)) > 0;) {
    if (WIFSTOPPED(status)) ptrace(PTRACE_CONT, task, 0, 0);
    else if (task == pid) return;
  }
}

}  // namespace

pid_t spawn(const std::vector<std::string>& argv, const std::function<int()>& in_child,
            const std::function<void(pid_t)>& before_release) {
  const std::string path = resolve(argv.at(0));
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  int go[2], report[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0)
    throw Error(std::string("pipe: ") + std::strerror(errno));
  pid_t pid = fork();
  if (pid < 0) throw Error(std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    close(go[1]);
    close(report[0]);
    char byte;
    if (read(go[0], &byte, 1) != 1) _exit(127);  // the parent gave up
    sigprocmask(SIG_UNBLOCK, &handled_signals(), nullptr);
    int failure[2] = {1, in_child ? in_child() : 0};
    if (failure[1] == 0) {
      execv(path.c_str(), args.data());
      failure[0] = 0;
      failure[1] = errno;
    }
    (void)!write(report[1], failure, sizeof failure);
    _exit(127);
  }
  close(go[0]);
  close(report[1]);
  try {
    if (before_release) before_release(pid);
  } catch (...) {
    close(go[1]);  // the child exits without running anything
    close(report[0]);
    reap(pid);
    throw;
  }
  (void)!write(go[1], "g", 1);
  close(go[1]);
  // The report pipe closes on a successful exec (O_CLOEXEC); bounded anyway.
  pollfd p{report[0], POLLIN, 0};
  int failure[2] = {0, 0};
  int ready = poll(&p, 1, 30000);
  ssize_t n = ready > 0 ? read(report[0], failure, sizeof failure) : -1;
  close(report[0]);
  if (n == 0) return pid;
  kill(pid, SIGKILL);
  reap(pid);
  if (n != sizeof failure) throw Error(argv[0] + ": did not start within 30 s");
  throw Error(argv[0] + (failure[0] ? ": cannot be traced: " : ": ") + std::strerror(failure[1]));
}

}  // namespace closecheck::cli
