// What recording open sites costs (docs/performance.md, "Open sites"). Built
// twice from this file: closecheck_sites_bench links libclosecheck_sites.so
// (as closecheck::gtest does), closecheck_sites_bench_plain does not. Same
// code, same calls; the difference per creation is the recorder's price.
// CLOSECHECK_SITES=off on the first shows the price of the pass-through alone.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "closecheck/closecheck.hpp"

namespace {

// A test that opens and closes 100 sockets.
void BM_SocketAndClose100(benchmark::State& state) {
  for (auto _ : state)
    for (int i = 0; i < 100; ++i) close(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_SocketAndClose100);

void BM_PipeAndClose100(benchmark::State& state) {
  int p[2];
  for (auto _ : state)
    for (int i = 0; i < 100; ++i) {
      if (pipe2(p, O_CLOEXEC) != 0) state.SkipWithError("pipe2");
      close(p[0]);
      close(p[1]);
    }
  state.SetItemsProcessed(state.iterations() * 200);  // fds created
}
BENCHMARK(BM_PipeAndClose100);

// A test that opens nothing: what the listener does between two tests (the
// check, and the look at the double-close count).
void BM_TestThatOpensNothing(benchmark::State& state) {
  closecheck::Options options;
  options.settle = std::chrono::milliseconds(0);
  auto baseline = closecheck::Snapshot::take();
  std::size_t found = 0;
  for (auto _ : state) {
    found += closecheck::take_bad_closes().size();
    closecheck::Snapshot now;
    found += closecheck::find_leaks(baseline, options, &now).size();
    baseline = std::move(now);
  }
  if (found) state.SkipWithError("found something where there is nothing");
}
BENCHMARK(BM_TestThatOpensNothing);

}  // namespace

BENCHMARK_MAIN();
