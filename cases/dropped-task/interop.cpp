// dropped-task with peers not written here: socat sends a keepalive and
// half-closes; an asyncio script (Debian's /usr/bin/python3) is both the
// client and the forward's target.
#include <gtest/gtest.h>

#include "closecheck/gtest.hpp"
#include "fixtures/process.hpp"
#include "scenario.hpp"

using namespace dropped_task;
using closecheck::TcpState;

namespace {
// socat's -t: how long it waits for the server after its stdin ends.
std::string seconds(std::chrono::milliseconds ms) { return std::to_string(ms.count() / 1000.0); }
}  // namespace

TEST(DroppedTaskInterop, SocatKeepalive) {
  Server server;
  fixtures::Finished socat;
  auto expected = broken ? std::vector<closecheck::Expected>{{1, closecheck::tcp(TcpState::close_wait)
                                                                     .local(server.address())}}
                         : std::vector<closecheck::Expected>{};
  auto leaks = closecheck::Leaks(expected, [&] {
    socat = fixtures::Process::run({"socat", "-t", seconds(wait_for_answer()), "-", "TCP:" + server.address()},
                                   "PING socat\n", std::chrono::seconds(30));
  });
  EXPECT_TRUE(leaks);
  EXPECT_EQ(socat.exit_code, 0) << socat.err;
  EXPECT_EQ(socat.out, broken ? "" : "PONG socat\n");
  EXPECT_EQ(settled(server, 1, broken ? 1 : 0).loop.destroyed_pending, broken ? 1u : 0u);
}

TEST(DroppedTaskInterop, AsyncioClientAndTarget) {
  Server server;
  fixtures::Finished peer;
  auto expected = broken ? std::vector<closecheck::Expected>{
      {1, closecheck::tcp(TcpState::close_wait).local(server.address())},
      {1, closecheck::tcp(TcpState::close_wait).peer("127.0.0.1:*")}}  // the forward
                         : std::vector<closecheck::Expected>{};
  auto leaks = closecheck::Leaks(expected, [&] {
    peer = fixtures::Process::run({"/usr/bin/python3", DROPPED_TASK_PEER, std::to_string(server.endpoint().port()),
                                   seconds(wait_for_answer())},
                                  "", std::chrono::seconds(30));
  });
  EXPECT_TRUE(leaks);
  EXPECT_EQ(peer.exit_code, 0) << peer.err;
  EXPECT_EQ(peer.out, broken ? "TIMEOUT\n"
                             : "PONG asyncio\nFORWARD 1 open\nDATA 1 hello from asyncio\nFORWARD 1 closed\nEOF\n");
  EXPECT_EQ(settled(server, 2, broken ? 1 : 0).loop.destroyed_pending, broken ? 2u : 0u);
}
