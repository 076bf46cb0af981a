// Snapshots, ignore filters, settling, and expected leaks.
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"
#include "closecheck/sites.hpp"

namespace closecheck {

Snapshot Snapshot::take() {
  Snapshot snap;
  // Raw system calls: the check's own fd is not the program's, and the
  // open-site recorder need not unwind for it on every test.
  int dir = static_cast<int>(syscall(SYS_openat, AT_FDCWD, "/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) return snap;
  alignas(8) char buf[8192];
  for (;;) {
    long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      auto* d = reinterpret_cast<dirent64*>(buf + off);
      off += d->d_reclen;
      if (d->d_name[0] < '0' || d->d_name[0] > '9') continue;
      int number = std::atoi(d->d_name);
      if (number == dir) continue;
      struct stat st{};
      if (fstat(number, &st) != 0) continue;  // closed meanwhile
      Fd fd;
      fd.number = number;
      fd.device = st.st_dev;
      fd.inode = st.st_ino;
      snap.fds_.push_back(fd);
    }
  }
  syscall(SYS_close, dir);
  std::sort(snap.fds_.begin(), snap.fds_.end(),
            [](const Fd& a, const Fd& b) { return a.number < b.number; });
  return snap;
}

bool Snapshot::contains(const Fd& fd) const {
  auto it = std::lower_bound(fds_.begin(), fds_.end(), fd.number,
                             [](const Fd& a, int n) { return a.number < n; });
  return it != fds_.end() && it->same_object(fd);
}

namespace {

std::mutex global_mutex;
std::vector<Predicate>& global_ignores() {
  static std::vector<Predicate> ignores;
  return ignores;
}

bool glob(const std::string& pattern, const std::string& text) {
  return fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
}

// New descriptors (identity only) since baseline; `now` receives the snapshot.
std::vector<Fd> new_since(const Snapshot& baseline, Snapshot& now) {
  std::vector<Fd> out;
  now = Snapshot::take();
  for (const auto& fd : now.fds())
    if (!baseline.contains(fd)) out.push_back(fd);
  return out;
}

std::vector<Fd> classify_unignored(const std::vector<Fd>& ids, const Options& options) {
  std::vector<Predicate> globals;
  {
    std::lock_guard lock(global_mutex);
    globals = global_ignores();
  }
  std::vector<Fd> fds;
  for (const auto& id : ids) {
    auto fd = inspect(id.number);
    if (fd && fd->same_object(id)) fds.push_back(std::move(*fd));  // else closed or replaced meanwhile
  }
  find_open_sites(fds);  // before the filters: a filter may ask where it was opened
  std::vector<Fd> out;
  for (auto& fd : fds) {
    auto ignored = [&](const Predicate& p) { return p(fd); };
    if (std::any_of(options.ignore.begin(), options.ignore.end(), ignored) ||
        std::any_of(globals.begin(), globals.end(), ignored))
      continue;
    out.push_back(std::move(fd));
  }
  return out;
}

// Calls check() on the current leaks until it returns true or settle runs out.
// Returns the last leaks seen.
template <class Check>
std::vector<Fd> settle(const Snapshot& baseline, const Options& options, Check check,
                       Snapshot* now = nullptr) {
  std::vector<Fd> leaks;
  Snapshot last;
  eventually(
      [&] {
        leaks = classify_unignored(new_since(baseline, last), options);
        return check(leaks);
      },
      options);
  if (now) *now = std::move(last);
  return leaks;
}

}  // namespace

Predicate ignore_kind(Kind k) {
  return [k](const Fd& fd) { return fd.kind == k; };
}
Predicate ignore_target(std::string pattern) {
  return [p = std::move(pattern)](const Fd& fd) { return glob(p, fd.target); };
}
Predicate ignore_fd(int number) {
  return [number](const Fd& fd) { return fd.number == number; };
}
Predicate ignore_snapshot(Snapshot snap) {
  return [s = std::move(snap)](const Fd& fd) { return s.contains(fd); };
}
void ignore_always(Predicate p) {
  std::lock_guard lock(global_mutex);
  global_ignores().push_back(std::move(p));
}

bool eventually(const std::function<bool()>& condition, const Options& options) {
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + options.settle;
  auto wait = std::chrono::duration_cast<clock::duration>(options.first_wait);
  for (;;) {
    // Settling is time spent waiting: the check's own time (symbolizing a
    // stack for the first time can take a while) is not taken from it.
    auto checking = clock::now();
    if (condition()) return true;
    auto now = clock::now();
    deadline += now - checking;
    if (now >= deadline) return false;
    // The settle-with-backoff itself: the one place closecheck waits.
    std::this_thread::sleep_for(std::min(wait, deadline - now));
    wait *= 2;
  }
}

std::vector<Fd> find_leaks(const Snapshot& baseline, const Options& options, Snapshot* now) {
  return settle(
      baseline, options, [](const std::vector<Fd>& leaks) { return leaks.empty(); }, now);
}

// --- Match -----------------------------------------------------------------

Match Match::with(std::string what, Predicate p) const {
  Match m = *this;
  m.tests_.push_back(std::move(p));
  m.description_ = tests_.empty() ? std::move(what) : description_ + " " + what;
  return m;
}
Match Match::state(TcpState s) const {
  return with(std::string(to_string(s)),
              [s](const Fd& fd) { return fd.socket && fd.socket->state == s; });
}
Match Match::local(std::string pattern) const {
  return with("local " + pattern, [pattern](const Fd& fd) {
    return fd.socket && glob(pattern, fd.socket->local);
  });
}
Match Match::peer(std::string pattern) const {
  return with("peer " + pattern, [pattern](const Fd& fd) {
    return fd.socket && glob(pattern, fd.socket->peer);
  });
}
Match Match::opened_in(std::string pattern) const {
  return with("opened in " + pattern, [pattern](const Fd& fd) {
    if (!recording_open_sites()) return true;  // a ThreadSanitizer build, or CLOSECHECK_SITES=off
    return fd.opened.known() && glob(pattern, fd.opened.frames[fd.opened.site].file);
  });
}
Match Match::target(std::string pattern) const {
  return with("target " + pattern, [pattern](const Fd& fd) { return glob(pattern, fd.target); });
}
bool Match::operator()(const Fd& fd) const {
  return std::all_of(tests_.begin(), tests_.end(), [&](const Predicate& p) { return p(fd); });
}

Match any() { return {}; }
Match kind(Kind k) {
  return Match().with(std::string(to_string(k)), [k](const Fd& fd) { return fd.kind == k; });
}
Match tcp() {
  return Match().with("socket tcp", [](const Fd& fd) { return fd.socket && fd.socket->is_tcp(); });
}
Match tcp(TcpState s) { return tcp().state(s); }
Match socket_protocol(std::string name) {
  return Match().with("socket " + name, [name](const Fd& fd) {
    return fd.socket && fd.socket->protocol_name() == name;
  });
}

// --- Expected leaks --------------------------------------------------------

namespace {

// Assigns each leak to the first expectation it matches; returns the
// assignment (index into expected, or -1) when every count is met exactly.
std::vector<int> assign(const std::vector<Expected>& expected, const std::vector<Fd>& leaks,
                        bool& exact) {
  std::vector<int> owner(leaks.size(), -1);
  std::vector<std::size_t> counts(expected.size(), 0);
  for (std::size_t i = 0; i < leaks.size(); ++i)
    for (std::size_t e = 0; e < expected.size(); ++e)
      if (counts[e] < expected[e].count && expected[e].match(leaks[i])) {
        owner[i] = static_cast<int>(e);
        ++counts[e];
        break;
      }
  exact = std::all_of(owner.begin(), owner.end(), [](int o) { return o >= 0; });
  for (std::size_t e = 0; e < expected.size(); ++e) exact = exact && counts[e] == expected[e].count;
  return owner;
}

std::string expectation_text(const std::vector<Expected>& expected) {
  if (expected.empty()) return "  nothing\n";
  std::string s;
  for (const auto& e : expected)
    s += "  " + std::to_string(e.count) + " x " + e.match.description() + "\n";
  return s;
}

// Callers shown under each open site: CLOSECHECK_FRAMES (0 to 64), as the
// GoogleTest listener's reports show them, else what the options say.
std::size_t frames_shown(const Options& options) {
  const char* e = std::getenv("CLOSECHECK_FRAMES");
  if (!e || !*e) return options.frames;
  char* end = nullptr;
  unsigned long n = std::strtoul(e, &end, 10);
  return *end == '\0' && n <= 64 ? n : options.frames;
}

}  // namespace

Verdict expect_leaks(const std::vector<Expected>& expected, const std::function<void()>& block,
                     Reclaim reclaim, const Options& options) {
  auto baseline = Snapshot::take();
  block();
  bool exact = false;
  auto leaks = settle(baseline, options, [&](const std::vector<Fd>& now) {
    assign(expected, now, exact);
    return exact;
  });
  auto owner = assign(expected, leaks, exact);
  Verdict v;
  v.ok = exact;
  v.leaked = leaks;
  if (!exact) {
    v.message = "expected the block to leak:\n" + expectation_text(expected) + "but it leaked:\n" +
                (leaks.empty() ? std::string("  nothing\n") : report(leaks, frames_shown(options)));
  }
  if (reclaim == Reclaim::close)
    for (std::size_t i = 0; i < leaks.size(); ++i)
      if (owner[i] >= 0) ::close(leaks[i].number);
  return v;
}

Verdict expect_no_leaks(const std::function<void()>& block, const Options& options) {
  return expect_leaks({}, block, Reclaim::keep, options);
}

}  // namespace closecheck
