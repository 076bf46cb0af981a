// In-process costs: the per-test check, classifying leaks, the namespace-wide
// sweep, and the per-check detectors people use today. Arguments are named in
// the benchmark names (own_fds, host_sockets, leaked).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "closecheck/closecheck.hpp"
#include "closecheck/sweep.hpp"
#include "support.hpp"

namespace {

using closecheck::Snapshot;
using closecheck::TcpState;

closecheck::Options no_settle() {
  closecheck::Options o;
  o.settle = std::chrono::milliseconds(0);
  return o;
}

}  // namespace

namespace bench {

// What the listener does for every test that leaks nothing, between two tests
// of a suite: find_leaks in OnTestEnd, whose last snapshot becomes the next
// test's baseline in OnTestStart (one scan of /proc/self/fd per test). Not
// inlined, so callgrind can count exactly this (--toggle-collect=bench::per_test_check*).
[[gnu::noinline]] std::size_t per_test_check(const closecheck::Options& options,
                                             Snapshot& baseline) {
  Snapshot now;
  auto leaks = closecheck::find_leaks(baseline, options, &now).size();
  baseline = std::move(now);
  return leaks;
}

}  // namespace bench

namespace {

void BM_PerTestCheck(benchmark::State& state) {
  bench::host_sockets(static_cast<int>(state.range(1)));
  bench::LeakyServer listener;  // like a test process, it has a TCP socket among its fds
  bench::OwnFds own(static_cast<std::size_t>(state.range(0)));
  auto options = no_settle();
  std::size_t leaks = 0;
  auto baseline = Snapshot::take();
  for (auto _ : state) leaks += bench::per_test_check(options, baseline);
  if (leaks) state.SkipWithError("the check found leaks where there are none");
  state.counters["fds"] = static_cast<double>(Snapshot::take().size());
}

void PerTestCheckArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"own_fds", "host_sockets"});
  for (int host : {0, 10000})  // host outermost: one helper serves a whole row
    for (int own : {10, 20, 100, 1000}) b->Args({own, host});
}
BENCHMARK(BM_PerTestCheck)->Apply(PerTestCheckArgs);

// One snapshot alone: half of the check above, and what a test would cost if
// the listener reused the end-of-test snapshot as the next test's baseline.
void BM_SnapshotTake(benchmark::State& state) {
  bench::host_sockets(0);
  bench::OwnFds own(static_cast<std::size_t>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(Snapshot::take());
}
BENCHMARK(BM_SnapshotTake)->ArgName("own_fds")->Arg(10)->Arg(20)->Arg(100)->Arg(1000);

// find_leaks on a test that did leak: the new fds are classified (fstat,
// readlink, getsockname/getpeername, TCP_INFO). Per leaked fd: items_per_second.
void BM_ClassifyLeaks(benchmark::State& state) {
  bench::host_sockets(0);
  bench::LeakyServer server;
  auto before = Snapshot::take();
  std::vector<int> leaked;
  for (int i = 0; i < state.range(0); ++i) leaked.push_back(server.leak_one());
  auto options = no_settle();
  std::vector<closecheck::Fd> leaks;
  for (auto _ : state) leaks = closecheck::find_leaks(before, options);
  auto close_wait = closecheck::tcp(TcpState::close_wait).peer("127.0.0.1:*");
  if (leaks.size() != leaked.size() || !std::all_of(leaks.begin(), leaks.end(), close_wait))
    state.SkipWithError("find_leaks did not name every CLOSE_WAIT leak");
  for (int fd : leaked) bench::LeakyServer::reset(fd);
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_ClassifyLeaks)->ArgName("leaked")->Arg(1)->Arg(10)->Arg(100);

// --- The namespace-wide sweep: sock_diag vs /proc/net/tcp ------------------

// Two CLOSE_WAIT sockets of ours among the helper's ESTABLISHED ones.
struct Planted {
  bench::LeakyServer server;
  int fds[2] = {server.leak_one(), server.leak_one()};
  ~Planted() {
    for (int fd : fds) bench::LeakyServer::reset(fd);
  }
};

void BM_SweepCloseWait(benchmark::State& state) {
  bench::host_sockets(static_cast<int>(state.range(0)));
  Planted planted;
  std::size_t found = 0;
  for (auto _ : state) found = closecheck::sweep(closecheck::state_bit(TcpState::close_wait)).size();
  if (found != 2) state.SkipWithError("sweep did not find exactly the 2 planted CLOSE_WAIT sockets");
}

void BM_SweepAllStates(benchmark::State& state) {
  bench::host_sockets(static_cast<int>(state.range(0)));
  Planted planted;
  std::size_t found = 0;
  for (auto _ : state) found = closecheck::sweep(~0u).size();
  if (found < static_cast<std::size_t>(state.range(0)))
    state.SkipWithError("sweep saw fewer sockets than the helper holds");
  state.counters["sockets"] = static_cast<double>(found);
}

void BM_ProcNetTcpCloseWait(benchmark::State& state) {
  bench::host_sockets(static_cast<int>(state.range(0)));
  Planted planted;
  std::size_t found = 0;
  for (auto _ : state) {
    auto all = bench::read_proc_net_tcp();
    found = static_cast<std::size_t>(std::count_if(all.begin(), all.end(), [](const bench::ProcTcp& t) {
      return t.state == static_cast<int>(TcpState::close_wait);
    }));
  }
  if (found != 2) state.SkipWithError("/proc/net/tcp did not show exactly the 2 planted sockets");
}

BENCHMARK(BM_SweepCloseWait)->ArgName("host_sockets")->Arg(100)->Arg(10000);
BENCHMARK(BM_SweepAllStates)->ArgName("host_sockets")->Arg(100)->Arg(10000);
BENCHMARK(BM_ProcNetTcpCloseWait)->ArgName("host_sockets")->Arg(100)->Arg(10000);

// --- One per-test check, done the ways people do it today ------------------
// Before and after a test that leaks nothing, with 20 fds of our own, one of
// them a TCP listener (lsof reads /proc/net/tcp only for processes with sockets).

void BM_CheckWithLsof(benchmark::State& state) {
  bench::host_sockets(static_cast<int>(state.range(0)));
  bench::LeakyServer listener;
  bench::OwnFds own(20);
  std::size_t changed = 0;
  for (auto _ : state) {
    auto before = bench::lsof_open_files(getpid());
    auto after = bench::lsof_open_files(getpid());
    changed += std::count_if(after.begin(), after.end(), [&](const auto& f) {
      return !before.contains(f) && f.second.find("->") != std::string::npos;
    });
  }
  if (changed) state.SkipWithError("lsof saw a new connection where there is none");
}

void BM_CheckWithProcNetTcp(benchmark::State& state) {
  bench::host_sockets(static_cast<int>(state.range(0)));
  bench::LeakyServer listener;
  bench::OwnFds own(20);
  std::size_t changed = 0;
  auto close_waits = [] {
    std::set<unsigned long> s;
    for (const auto& t : bench::read_proc_net_tcp())
      if (t.state == static_cast<int>(TcpState::close_wait)) s.insert(t.inode);
    return s;
  };
  for (auto _ : state) {
    auto before = close_waits();
    auto after = close_waits();
    changed += after != before;
  }
  if (changed) state.SkipWithError("/proc/net/tcp changed where nothing happened");
}

BENCHMARK(BM_CheckWithProcNetTcp)->ArgName("host_sockets")->Arg(0)->Arg(10000);
BENCHMARK(BM_CheckWithLsof)->ArgName("host_sockets")->Arg(0)->Arg(10000)->Unit(benchmark::kMillisecond);

}  // namespace
