// dropped-task: the same tests run against broken.cpp and fixed.cpp.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <thread>

#include "closecheck/gtest.hpp"
#include "closecheck/netns.hpp"
#include "closecheck/sweep.hpp"
#include "scenario.hpp"

using namespace dropped_task;
using closecheck::TcpState;

namespace {

// Waits (bounded) until the server's state satisfies pred.
template <class Pred>
bool server_reaches(Server& server, Pred pred) {
  return closecheck::eventually([&] { return pred(server.stats()); }, {.settle = answer_wait});
}

std::size_t count_lines(const std::string& text, const std::string& prefix) {
  std::size_t n = 0;
  for (std::size_t at = 0; at < text.size();) {
    auto end = text.find('\n', at);
    if (end == std::string::npos) break;
    if (text.compare(at, prefix.size(), prefix) == 0) ++n;
    at = end + 1;
  }
  return n;
}

}  // namespace

// A keepalive reply is a task nobody keeps.
TEST(DroppedTask, KeepaliveReply) {
  Server server;
  std::optional<std::string> saw;
  auto expected = broken ? std::vector<closecheck::Expected>{{1, closecheck::tcp(TcpState::close_wait)
                                                                     .local(server.address())
                                                                     .peer("127.0.0.1:*")}}
                         : std::vector<closecheck::Expected>{};
  auto leaks = closecheck::Leaks(expected, [&] {
    auto client = connect(server);
    fixtures::send_all(client.get(), "PING 42\n");
    ::shutdown(client.get(), SHUT_WR);
    saw = transcript(client.get(), wait_for_answer());
  });  // the server still owns the connection
  EXPECT_TRUE(leaks);
  auto stats = settled(server, 1, broken ? 1 : 0);
  if (broken) {
    EXPECT_EQ(saw, std::nullopt) << "neither PONG nor the server's close";
    EXPECT_EQ(stats.loop.destroyed_pending, 1u);
    EXPECT_EQ(stats.loop.last_destroyed, "keepalive 42");
    EXPECT_EQ(stats.connections, 1u);
  } else {
    EXPECT_EQ(saw, "PONG 42\n");
    EXPECT_EQ(stats.loop.destroyed_pending, 0u);
    EXPECT_EQ(stats.loop.finished, 1u);
  }
}

// The canonical scenario: the task that finishes a port forward.
TEST(DroppedTask, ForwardIsFinished) {
  Server server;
  Target target;
  ForwardRun run;
  auto leaks = closecheck::Leaks(expected_after_forward(server, target),
                                 [&] { run = forward_once(server, target); });
  EXPECT_TRUE(leaks);
  auto stats = settled(server, 1, broken ? 1 : 0);
  if (broken) {
    EXPECT_EQ(run.client_saw, std::nullopt) << "no FORWARD 1 open/closed, no close";
    EXPECT_EQ(run.target_saw, std::nullopt) << "the forward never closed its side";
    EXPECT_EQ(stats.loop.destroyed_pending, 1u);
    EXPECT_EQ(stats.loop.last_destroyed, "finish forward 1");
    EXPECT_EQ(stats.connections, 1u);
    // The peers closed, so the kernel keeps their sides as orphans waiting in
    // FIN_WAIT2 for the FIN the server never sends.
    ASSERT_EQ(leaks.leaked.size(), 2u);
    auto waiting = closecheck::sweep(closecheck::state_bit(TcpState::fin_wait2));
    for (const auto& ours : leaks.leaked) {
      EXPECT_TRUE(std::any_of(waiting.begin(), waiting.end(), [&](const closecheck::DiagSocket& s) {
        return s.local == ours.socket->peer && s.peer == ours.socket->local;
      })) << "no FIN_WAIT2 peer for " << closecheck::describe(ours);
    }
  } else {
    EXPECT_EQ(run.client_saw, forward_transcript);
    EXPECT_EQ(run.target_saw, "");
    EXPECT_EQ(stats.loop.finished, 1u);
    EXPECT_EQ(stats.connections, 0u);
  }
}

// 10,000 keepalives on one connection. Fixed: the strong set holds each task
// until it is done and is reaped to empty; the fd count stays flat. Broken:
// every task is gone before its first step (the loop finds only a dead weak
// reference), no reply comes, and the client's close leaves the server's
// side in CLOSE_WAIT.
TEST(DroppedTask, TenThousandTasks) {
  constexpr int batches = 100, per_batch = 100;
  constexpr std::size_t tasks = batches * per_batch;
  Server server;
  std::string client_address;
  std::size_t pongs = 0;
  Server::Stats stats;  // once every task is done, the connection still open
  auto expected = broken ? std::vector<closecheck::Expected>{{1, closecheck::tcp(TcpState::close_wait)
                                                                     .local(server.address())
                                                                     .peer("127.0.0.1:*")
                                                                     .opened_in(fixtures::variant.opened_in)}}
                         : std::vector<closecheck::Expected>{};
  auto leaks = closecheck::Leaks(expected, [&] {
    auto client = connect(server);
    client_address = closecheck::inspect(client.get())->socket->local;
    std::size_t during = 0;
    for (int b = 0; b < batches; ++b) {
      std::string requests;
      for (int i = 0; i < per_batch; ++i) requests += "PING " + std::to_string(b * per_batch + i) + "\n";
      fixtures::send_all(client.get(), requests);
      if (broken) continue;  // nothing will come back
      std::string got;
      while (count_lines(got, "PONG ") < per_batch) {
        auto more = fixtures::read_until(client.get(), '\n', answer_wait);
        ASSERT_TRUE(more && !more->empty()) << "batch " << b << " stalled";
        got += *more;
      }
      pongs += count_lines(got, "PONG ");
      auto now = closecheck::Snapshot::take().size();
      if (b == 0) during = now;
      EXPECT_EQ(now, during) << "fds flat, batch " << b;
    }
    ASSERT_TRUE(server_reaches(server, [](const Server::Stats& s) {
      return s.loop.started == tasks && s.loop.live == 0;
    }));
    stats = server.stats();
    if (broken) {
      EXPECT_FALSE(fixtures::wait_readable(client.get(), missing_wait)) << "no PONG, no close";
    } else {
      ::shutdown(client.get(), SHUT_WR);
      EXPECT_EQ(fixtures::read_to_eof(client.get(), answer_wait), "");
    }
  });  // broken: the server still owns its side
  EXPECT_TRUE(leaks);
  EXPECT_EQ(stats.connections, 1u);
  if (broken) {
    // Exactly one leak: the server's side of this client's connection.
    ASSERT_EQ(leaks.leaked.size(), 1u);
    EXPECT_EQ(leaks.leaked[0].socket->peer, client_address);
    EXPECT_EQ(stats.loop.destroyed_pending, tasks);
    EXPECT_EQ(stats.loop.lost_wakeups, tasks) << "each first step found its task gone: nothing owned it";
    EXPECT_EQ(stats.loop.finished, 0u);
    EXPECT_EQ(server.stats().connections, 1u) << "the connection waits for replies that never come";
  } else {
    EXPECT_EQ(pongs, tasks);
    EXPECT_EQ(stats.loop.finished, tasks);
    EXPECT_EQ(stats.loop.lost_wakeups, 0u);
    EXPECT_GE(stats.peak_tasks_held, 1u) << "the connection's set held the tasks in flight";
    EXPECT_EQ(stats.tasks_held, 0u) << "and was reaped to empty once they were done";
    EXPECT_LE(stats.loop.peak_live, static_cast<std::size_t>(per_batch)) << "bounded by the requests in flight";
    EXPECT_EQ(settled(server, tasks, 0).connections, 0u) << "closed after the client's EOF";
  }
}

// A task that fails: the target resets the forward. Fixed: the task reports
// the failure, closes its forward, and the connection finishes.
TEST(DroppedTask, FailingTaskCleansUp) {
  Server server;
  Target target;
  std::optional<std::string> saw;
  auto expected = broken ? std::vector<closecheck::Expected>{
      {1, closecheck::tcp(TcpState::close_wait).local(server.address())},
      {1, closecheck::tcp(TcpState::close)}}  // the forward, reset and never closed
                         : std::vector<closecheck::Expected>{};
  auto leaks = closecheck::Leaks(expected, [&] {
    auto client = connect(server);
    fixtures::send_all(client.get(), "FORWARD " + std::to_string(target.port()) + "\n");
    ::shutdown(client.get(), SHUT_WR);
    auto accepted = target.accept();
    // Reset only once the forward is connected and its task exists.
    ASSERT_TRUE(server_reaches(server, [](const Server::Stats& s) { return s.loop.started == 1; }));
    fixtures::set_linger_zero(accepted.get());
    accepted.reset();
    saw = transcript(client.get(), wait_for_answer());
  });
  EXPECT_TRUE(leaks);
  auto stats = settled(server, 1, broken ? 1 : 0);
  if (broken) {
    EXPECT_EQ(saw, std::nullopt);
    EXPECT_EQ(stats.loop.destroyed_pending, 1u);
  } else {
    EXPECT_EQ(saw, "FORWARD 1 open\nFORWARD 1 failed: Connection reset by peer\n");
    EXPECT_EQ(stats.loop.finished, 1u);
    EXPECT_EQ(stats.connections, 0u);
  }
}

// A connection reset while a forward and a keepalive are in flight. No
// cancel-on-close: the hard close closes the forward's socket, the task's
// read fails, it tries to report, fails (an exception) and is reaped.
TEST(DroppedTask, ConnectionClosedWhileTasksInFlight) {
  Server server;
  Target target;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto client = connect(server);
    fixtures::send_all(client.get(), "FORWARD " + std::to_string(target.port()) + "\nPING a\n");
    auto accepted = target.accept();
    ASSERT_TRUE(server_reaches(server, [](const Server::Stats& s) { return s.loop.started == 2; }));
    if (!broken) {
      std::string got;
      while (got.find("FORWARD 1 open\n") == std::string::npos) {
        auto more = fixtures::read_until(client.get(), '\n', answer_wait);
        ASSERT_TRUE(more && !more->empty()) << "got only: " << got;
        got += *more;
      }
    }
    fixtures::set_linger_zero(client.get());
    client.reset();  // RST: the server's read fails and it closes hard
    EXPECT_EQ(fixtures::read_to_eof(accepted.get(), answer_wait), "") << "the forward was closed";
    ASSERT_TRUE(server_reaches(server, [](const Server::Stats& s) {
      return s.connections == 0 && s.loop.live == 0;
    }));
  }));
  auto stats = server.stats().loop;
  if (broken) {
    EXPECT_EQ(stats.destroyed_pending, 2u) << "the hard close reclaimed what the dropped task left";
  } else {
    EXPECT_EQ(stats.destroyed_pending, 0u);
    EXPECT_EQ(stats.finished, 2u);
    EXPECT_EQ(stats.failed, 1u) << "the forward's task, whose last report could not be sent";
  }
}

// No task involved: the forward's connect fails and is answered directly,
// the same in both variants.
TEST(DroppedTask, ForwardToAClosedPort) {
  // The closed port must stay closed: no other test may take it meanwhile.
  std::string why;
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  Server server;
  std::uint16_t closed_port = Target().port();  // listened on, then closed
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto client = connect(server);
    fixtures::send_all(client.get(), "FORWARD " + std::to_string(closed_port) + "\n");
    ::shutdown(client.get(), SHUT_WR);
    EXPECT_EQ(transcript(client.get(), answer_wait), "FORWARD 1 failed: Connection refused\n");
  }));
  EXPECT_EQ(server.stats().loop.started, 0u);
}

// Bad input: garbage, bad arguments and an over-long line get ERR replies;
// the rest of the long line is discarded and the connection ends at EOF.
TEST(DroppedTaskBadInput, GarbageGetsErrors) {
  Server server;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto client = connect(server);
    std::string garbage("\x00\xff\x01 garbage\n", 12);
    fixtures::send_all(client.get(), garbage + "FORWARD nope\nFORWARD 70000\nPING\n\r\n" +
                                         std::string(max_line + 1000, 'x'));
    ::shutdown(client.get(), SHUT_WR);
    EXPECT_EQ(transcript(client.get(), answer_wait),
              "ERR unknown command\nERR bad port\nERR bad port\nERR missing token\n"
              "ERR unknown command\nERR line too long\n");
    ASSERT_TRUE(server_reaches(server, [](const Server::Stats& s) { return s.connections == 0; }));
  }));
}

// Bad input: clients that go away in the middle of a request.
TEST(DroppedTaskBadInput, DisconnectMidRequest) {
  Server server;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    {
      auto client = connect(server);
      fixtures::send_all(client.get(), "FORWA");  // then FIN
    }
    {
      auto client = connect(server);
      fixtures::send_all(client.get(), "PING x\nPING y\nPI");
      fixtures::set_linger_zero(client.get());  // then RST, the replies in flight
    }
    ASSERT_TRUE(server_reaches(server, [](const Server::Stats& s) {
      return s.accepted == 2 && s.connections == 0 && s.loop.live == 0;
    }));
  }));
}

// Bad input: a flood of requests, written while the replies are read. The
// server stops reading while replies are queued, so the tasks in flight stay
// bounded; fixed answers every one.
TEST(DroppedTaskBadInput, FloodOfRequests) {
  constexpr std::size_t requests = 20'000;
  Server server;
  std::optional<std::string> saw;
  auto expected = broken ? std::vector<closecheck::Expected>{{1, closecheck::tcp(TcpState::close_wait)
                                                                     .local(server.address())}}
                         : std::vector<closecheck::Expected>{};
  auto leaks = closecheck::Leaks(expected, [&] {
    auto client = connect(server);
    std::thread writer([fd = client.get()] {
      std::string all;
      for (std::size_t i = 0; i < requests; ++i) all += "PING " + std::to_string(i) + "\n";
      try {
        fixtures::send_all(fd, all);
      } catch (const std::exception&) {  // the reader gave up and shut the socket down
      }
      ::shutdown(fd, SHUT_WR);
    });
    if (broken) writer.join();  // this server reads everything: it never has replies to queue
    saw = transcript(client.get(), wait_for_answer());
    ::shutdown(client.get(), SHUT_RDWR);  // unblocks the writer whatever happened
    if (writer.joinable()) writer.join();
  }, closecheck::Reclaim::keep, {.settle = answer_wait});  // the server may still be reading the flood
  EXPECT_TRUE(leaks);
  auto stats = settled(server, requests, broken ? 1 : 0);
  EXPECT_EQ(stats.connections, broken ? 1u : 0u);
  if (broken) {
    EXPECT_EQ(saw, std::nullopt);
    EXPECT_EQ(stats.loop.destroyed_pending, requests);
  } else {
    ASSERT_TRUE(saw);
    EXPECT_EQ(count_lines(*saw, "PONG "), requests);
    EXPECT_EQ(saw->size(), requests * 6 + [] {
      std::size_t digits = 0;
      for (std::size_t i = 0; i < requests; ++i) digits += std::to_string(i).size();
      return digits;
    }());
    EXPECT_EQ(stats.loop.finished, requests);
    EXPECT_LE(stats.loop.peak_live, max_queued_bytes / 6 + 1) << "at most a queue's worth of replies";
  }
}
