// The benchmarks' main: a private network namespace first (see support.hpp),
// so the socket counts are exact and nobody else's tests see our sockets.
#include <benchmark/benchmark.h>

#include <fstream>
#include <iostream>
#include <string>

#include "support.hpp"

int main(int argc, char** argv) {
  std::string netns;
  try {
    netns = bench::enter_private_netns();
  } catch (const std::exception& e) {
    std::cerr << "closecheck_bench: " << e.what() << "\n";
    return 1;
  }
  benchmark::AddCustomContext("network_namespace", netns);
  std::ifstream version("/proc/sys/kernel/osrelease");
  std::string kernel;
  std::getline(version, kernel);
  benchmark::AddCustomContext("kernel", kernel);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  bench::host_sockets(0);  // stop the helper
  return 0;
}
