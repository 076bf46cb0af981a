// The same leaky program for every detector: each of N "tests" leaves one
// server-side socket in CLOSE_WAIT (the client closed, the server never does),
// and a check around each test must find it, the way each tool is used today:
//
//   none          no check (the baseline; also what runs under valgrind --track-fds=yes)
//   closecheck    Snapshot::take before, find_leaks after (settle 0)
//   lsof          `lsof -Ffn0 -p PID` before and after, diffed (pytest's --lsof)
//   proc-net-tcp  /proc/net/tcp and tcp6 before and after: new CLOSE_WAIT inodes
//
// Prints what it found and exits 0 only if every leak was found (2: bad usage).
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <iostream>
#include <set>
#include <string>
#include <string_view>

#include "closecheck/closecheck.hpp"
#include "support.hpp"

namespace {

constexpr int close_wait = static_cast<int>(closecheck::TcpState::close_wait);

int usage(const std::string& why) {
  std::cerr << "closecheck_leaky_program: " << why << "\n"
            << "usage: closecheck_leaky_program --tests=N --check=none|closecheck|lsof|proc-net-tcp\n";
  return 2;
}

// One test under a check: true if the check saw the test's leak.
template <class Before, class Found>
bool checked_test(bench::LeakyServer& server, Before before, Found found) {
  auto baseline = before();
  server.leak_one();
  return found(baseline);
}

bool one_test(bench::LeakyServer& server, std::string_view check) {
  if (check == "none") {
    server.leak_one();
    return false;
  }
  if (check == "closecheck") {
    closecheck::Options options;
    options.settle = std::chrono::milliseconds(0);
    return checked_test(server, closecheck::Snapshot::take, [&](const closecheck::Snapshot& s) {
      auto leaks = closecheck::find_leaks(s, options);
      return std::any_of(leaks.begin(), leaks.end(), closecheck::tcp(closecheck::TcpState::close_wait));
    });
  }
  if (check == "lsof") {
    auto open_files = [] { return bench::lsof_open_files(getpid()); };
    return checked_test(server, open_files, [&](const auto& before) {
      for (const auto& file : open_files())
        if (!before.contains(file) && file.second.find("->") != std::string::npos) return true;
      return false;
    });
  }
  // proc-net-tcp
  auto inodes = [] {
    std::set<unsigned long> s;
    for (const auto& t : bench::read_proc_net_tcp())
      if (t.state == close_wait) s.insert(t.inode);
    return s;
  };
  return checked_test(server, inodes, [&](const std::set<unsigned long>& before) {
    auto after = inodes();
    return std::any_of(after.begin(), after.end(),
                       [&](unsigned long i) { return !before.contains(i); });
  });
}

}  // namespace

int main(int argc, char** argv) {
  int tests = -1;
  std::string check;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.starts_with("--tests=")) {
      auto v = arg.substr(8);
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), tests);
      if (ec != std::errc() || p != v.data() + v.size() || tests < 1 || tests > 10000)
        return usage("--tests wants a number from 1 to 10000, got '" + std::string(v) + "'");
    } else if (arg.starts_with("--check=")) {
      check = arg.substr(8);
      if (check != "none" && check != "closecheck" && check != "lsof" && check != "proc-net-tcp")
        return usage("unknown check '" + check + "'");
    } else {
      return usage("unknown argument '" + std::string(arg) + "'");
    }
  }
  if (tests < 0 || check.empty()) return usage("--tests and --check are required");

  try {
    bench::LeakyServer server;
    int found = 0;
    for (int i = 0; i < tests; ++i) found += one_test(server, check);
    std::cout << "leaky program: " << tests << " tests, check " << check << ": found " << found
              << " of " << tests << " leaks\n";
    return check == "none" || found == tests ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "closecheck_leaky_program: " << e.what() << "\n";
    return 1;
  }
}
