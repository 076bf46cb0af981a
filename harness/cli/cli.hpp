// The closecheck command: `run` checks a program's fds from the outside (ptrace),
// `watch` samples them over time. Shared pieces: options, errors, spawning.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace closecheck::cli {

// closecheck's own failure (bad input, a program that cannot be started or
// traced): main prints "closecheck: <what>" on one line and exits 2.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// findings: every finding fails (the default); leaks: the same, and implies
// --strict (every fd held at exit, as valgrind --track-fds counts them);
// close_wait: only sockets in CLOSE_WAIT; none: report only.
enum class FailOn { findings, leaks, close_wait, none };

struct RunOptions {
  bool json = false;
  std::vector<std::string> ignore;  // fnmatch globs on an fd's target or its line
  FailOn fail_on = FailOn::findings;
  bool strict = false;              // also every other fd held at exit
  std::chrono::milliseconds settle{1000};  // a server session in CLOSE_WAIT past its listener's close
  std::string output;               // the report goes here; stderr if empty
  std::chrono::milliseconds grace{10000};  // for children still running after the program
  bool open_sites = true;           // preload libclosecheck_sites.so: where each fd was opened
  std::size_t frames = 3;           // stack frames shown after each open site
  std::vector<std::string> ignore_opened_in;  // globs on a frame of the open site's stack
  std::vector<std::string> argv;
};

struct WatchOptions {
  std::chrono::milliseconds interval{1000};
  long samples = 0;  // 0: until the process exits or closecheck is interrupted
  pid_t pid = 0;     // watch an existing process instead of running argv
  std::vector<std::string> argv;
};

int run(const RunOptions&);
int watch(const WatchOptions&);

// Starts argv[0] (searched in PATH) in a child. in_child runs after fork and
// before exec and returns 0 or an errno; before_release runs in the parent
// before the child may go on (e.g. to attach to it). Signals blocked in
// closecheck are unblocked in the child. Throws Error if the program does
// not exist or cannot be executed.
pid_t spawn(const std::vector<std::string>& argv, const std::function<int()>& in_child,
            const std::function<void(pid_t)>& before_release);

// The signals closecheck handles synchronously (sigtimedwait): SIGCHLD,
// SIGINT, SIGTERM, SIGHUP. Blocked by main before anything else.
const sigset_t& handled_signals();

// A signal sent to closecheck with kill(1) is forwarded to the program; one
// from the terminal (Ctrl-C) already reached the program's process group.
bool should_forward(const siginfo_t&);

// The kernel's flags (field 9) from the text of /proc/PID/stat; nullopt if
// the text is not that (the process is gone, or the file was cut short).
std::optional<unsigned long> stat_flags(const std::string& stat);

// The exit status closecheck passes through: the code, or 128 + signal.
int exit_status(int wait_status);

}  // namespace closecheck::cli
