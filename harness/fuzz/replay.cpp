// Every committed seed of one fuzz target through its LLVMFuzzerTestOneInput,
// in the ordinary build (g++, no libFuzzer): the seeds are regression tests.
// Compiled with CLOSECHECK_FUZZ_SEEDS="dir" [CLOSECHECK_FUZZ_MIN_SEEDS=n] into
// each program that links closecheck_fuzz_replay (harness/fuzz/CMakeLists.txt).
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

#ifndef CLOSECHECK_FUZZ_MIN_SEEDS
#define CLOSECHECK_FUZZ_MIN_SEEDS 5
#endif

TEST(FuzzSeeds, Replay) {
  int seeds = 0;
  for (const auto& entry : std::filesystem::directory_iterator(CLOSECHECK_FUZZ_SEEDS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    SCOPED_TRACE(entry.path().filename().string());
    EXPECT_EQ(0, LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
    ++seeds;
  }
  EXPECT_GE(seeds, CLOSECHECK_FUZZ_MIN_SEEDS) << "seeds in " << CLOSECHECK_FUZZ_SEEDS;
}
