// emfile-accept-spin: the same tests run against broken.cpp, fixed-reserve.cpp
// and fixed-backoff.cpp. The server runs in a forked child with a full
// descriptor table (see scenario.hpp); the test process keeps its limit.
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "scenario.hpp"

using namespace emfile_accept_spin;

// Counted in the child over the window (at least `window` of its own clock
// between its two reads of the counters). Broken: a spin, at least
// spin_at_least failed accepts, and no answer. Reserve: one failed accept,
// then the client is closed. Back-off: a few, and the client waits.
TEST(EmfileAcceptSpin, WhileTheTableIsFull) {
  FullServer server;
  fixtures::UniqueFd client;
  auto seen = one_waiting_client(server, client);
  EXPECT_EQ(unexpected(seen), "") << describe(seen);
  EXPECT_GE(seen.measured, window) << "the counters were read less than a window apart: " << describe(seen);
  if (broken) EXPECT_GE(seen.failed_in_window, spin_at_least);
  else EXPECT_LE(seen.failed_in_window, fixed_at_most);
  if (reserve) EXPECT_EQ(server.stats().failed_accepts, 1u);
  EXPECT_EQ(server.finish(), 0);
}

// The spin is CPU: the broken child spends CPU time on every failed accept
// (counted over 50,000 of them, however slowly they come; at least 2 ms, 40 ns
// each, less than one system call costs); a fixed child idles through the
// window (under 20 ms of it).
TEST(EmfileAcceptSpin, CpuTimeWhileFull) {
  FullServer server;
  fixtures::UniqueFd client;
  auto seen = one_waiting_client(server, client);
  if (broken) {
    auto start = server.stats();
    ASSERT_TRUE(server.failed_at_least(start.failed_accepts + 50'000));
    auto cpu = server.stats().cpu - start.cpu;
    EXPECT_GE(cpu, std::chrono::milliseconds(2)) << "50,000 failed accepts in " << cpu.count() << " us of CPU";
  } else {
    EXPECT_LT(seen.cpu_in_window, std::chrono::milliseconds(20)) << describe(seen);
  }
  EXPECT_EQ(server.finish(), 0);
}

// Once descriptors free up, every variant serves again: the waiting client
// gets its answer (unless the reserve already closed it), a new client is
// served, and the failed accepts stop.
TEST(EmfileAcceptSpin, RecoversOnceDescriptorsFreeUp) {
  FullServer server;
  fixtures::UniqueFd waiting;
  auto seen = one_waiting_client(server, waiting);
  server.release();
  if (reserve) {
    EXPECT_EQ(seen.reply, std::string());
  } else {
    EXPECT_EQ(fixtures::read_until(waiting.get(), '\n', 10s), "ok: hello\n");
  }
  auto client = fixtures::connect_tcp("127.0.0.1", server.port());
  fixtures::send_all(client.get(), "again\n");
  EXPECT_EQ(fixtures::read_until(client.get(), '\n', 10s), "ok: again\n");
  auto after = server.stats();
  EXPECT_EQ(after.accepted, reserve ? 1u : 2u);
  server.watch(window);
  EXPECT_EQ(server.stats().failed_accepts, after.failed_accepts) << "still failing accepts";
  EXPECT_EQ(server.finish(), 0);
}

// Bad input while full: clients that reset their connection before it is
// accepted. The server survives them and serves the next client.
TEST(EmfileAcceptSpin, ResetBeforeAcceptWhileFull) {
  FullServer server;
  for (int i = 0; i < 5; ++i) {
    auto client = fixtures::connect_tcp("127.0.0.1", server.port());
    fixtures::set_linger_zero(client.get());  // close sends RST
  }
  ASSERT_TRUE(server.failed_at_least(1));
  server.release();
  auto client = fixtures::connect_tcp("127.0.0.1", server.port());
  fixtures::send_all(client.get(), "hello\n");
  EXPECT_EQ(fixtures::read_until(client.get(), '\n', 10s), "ok: hello\n");
  EXPECT_EQ(server.finish(), 0);
}

// With room in the table no accept fails, in any variant (in-process: the
// per-test check sees the server's own descriptors come and go).
TEST(EmfileAcceptSpin, ServesWhileTheTableHasRoom) {
  Server server;
  for (int i = 0; i < 20; ++i) {
    auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
    auto line = "request " + std::to_string(i) + "\n";
    fixtures::send_all(client.get(), line);
    EXPECT_EQ(fixtures::read_until(client.get(), '\n', 10s), "ok: " + line);
  }
  EXPECT_EQ(server.failed_accepts(), 0u);
  EXPECT_EQ(server.accepted(), 20u);
}

// Bad input: a line over max_line closes the connection; the server goes on.
TEST(EmfileAcceptSpin, OverlongLineClosesTheConnection) {
  Server server;
  {
    auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
    fixtures::send_all(client.get(), std::string(2 * max_line, 'x'));
    EXPECT_EQ(fixtures::read_to_eof(client.get(), 10s), "");
  }
  auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
  fixtures::send_all(client.get(), "hello\n");
  EXPECT_EQ(fixtures::read_until(client.get(), '\n', 10s), "ok: hello\n");
}
