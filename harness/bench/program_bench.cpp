// Whole programs, timed from spawn to exit (real time; child_cpu_ms is the
// child's user+system time from wait4, which waiting for a busy CPU does not inflate).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>

#include <fstream>
#include <regex>
#include <sstream>

#include "support.hpp"

namespace {

void run_program(benchmark::State& state, const std::vector<std::string>& argv,
                 const std::string& output = "/dev/null") {
  double cpu = 0;
  for (auto _ : state) {
    auto r = bench::run(argv, output);
    if (r.status != 0) {
      state.SkipWithError(("exit status " + std::to_string(r.status) + ": " + argv[0]).c_str());
      return;
    }
    cpu += r.cpu_seconds;
  }
  state.counters["child_cpu_ms"] =
      benchmark::Counter(cpu * 1e3 / static_cast<double>(state.iterations()));
}

// The same 400 tests, linked with GTest::gtest_main and with closecheck::gtest_main.
void BM_FourHundredTests(benchmark::State& state, const char* program) {
  bench::host_sockets(0);
  run_program(state, {program});
}
BENCHMARK_CAPTURE(BM_FourHundredTests, gtest_main, FOUR_HUNDRED_GTEST)
    ->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_FourHundredTests, closecheck_gtest_main, FOUR_HUNDRED_CLOSECHECK)
    ->UseRealTime()->Unit(benchmark::kMillisecond);

// The leaky program (leaky_program.cpp), 50 tests, under each detector.
constexpr const char* leaky_tests = "--tests=50";

void BM_LeakyProgram(benchmark::State& state, const char* check) {
  bench::host_sockets(static_cast<int>(state.range(0)));
  run_program(state, {LEAKY_PROGRAM, leaky_tests, std::string("--check=") + check});
}
void LeakyArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("host_sockets")->Arg(0)->Arg(10000)->UseRealTime()->Unit(benchmark::kMillisecond);
}
BENCHMARK_CAPTURE(BM_LeakyProgram, none, "none")->Apply(LeakyArgs);
BENCHMARK_CAPTURE(BM_LeakyProgram, closecheck, "closecheck")->Apply(LeakyArgs);
BENCHMARK_CAPTURE(BM_LeakyProgram, proc_net_tcp, "proc-net-tcp")->Apply(LeakyArgs);
BENCHMARK_CAPTURE(BM_LeakyProgram, lsof, "lsof")->Apply(LeakyArgs);

// valgrind --track-fds=yes over the whole run: it reports the fds still open
// at exit (all 50 leaks, plus the listener and stdio), not which test leaked.
void BM_LeakyProgramUnderValgrind(benchmark::State& state) {
  bench::host_sockets(0);
  std::string log = "/tmp/closecheck-bench-valgrind." + std::to_string(getpid()) + ".log";
  run_program(state, {"valgrind", "--track-fds=yes", "--log-file=" + log, LEAKY_PROGRAM,
                      leaky_tests, "--check=none"});
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  std::smatch m;
  std::string s = text.str();
  if (!std::regex_search(s, m, std::regex(R"(FILE DESCRIPTORS: (\d+) open)")) ||
      std::stoi(m[1]) < 50 + 3)
    state.SkipWithError("valgrind did not report the 50 leaked sockets");
  std::remove(log.c_str());
}
BENCHMARK(BM_LeakyProgramUnderValgrind)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(1);

}  // namespace
