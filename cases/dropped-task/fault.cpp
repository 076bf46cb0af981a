// dropped-task under injected faults (label fault): fixtures::fault::Proxy
// between the client and the server, or between the server and a forward's
// target. Fixed: every fault ends with nothing left open, in bounded time.
// Broken: its failure is contained and asserted: the replies that never come
// (cut by missing_wait), the CLOSE_WAIT sockets it keeps, the tasks destroyed
// pending. Faults that need no task end the same way in both variants.
// The faults between the client and the server are rows of the fault matrix
// (fixtures/fault/matrix.hpp); a forward's target is this case's own.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/matrix.hpp"
#include "scenario.hpp"

using namespace dropped_task;
using namespace fixtures::fault;
using closecheck::TcpState;

namespace {

// A keepalive client: "PING 0\n" is answered "PONG 0\n" by a task; a broken
// server drops the task, so it never answers, and never closes, waited
// missing_wait.
const Scenario<Server> scenario{
    .suite = "DroppedTaskFault",
    .port = [](const Server& s) { return s.endpoint().port(); },
    .request = [](std::size_t i) { return "PING " + std::to_string(i) + "\n"; },
    .answer = [](const std::string& ping) { return "PONG " + ping.substr(5); },
    .hang = missing_wait,
};

// Broken: the client's connection, half-closed with a request unanswered.
std::vector<closecheck::Expected> connection_left(const Server& server) {
  if (!broken) return {};
  return {{1, closecheck::tcp(TcpState::close_wait).local(server.address()).peer("127.0.0.1:*")}};
}

// What the client sees of its tasks: fixed, the replies and the server's
// close; broken, nothing at all (the transcript's nullopt: no byte, no EOF).
const std::string replies_end = broken ? "open" : "eof";
std::string replies(std::size_t n) { return broken ? "" : scenario.answers(n); }

// After one task's fault: broken, the task destroyed pending; fixed, finished.
void one_task_ended(Server& server, Seen&) {
  auto stats = settled(server, 1, broken ? 1 : 0);
  if (broken) {
    EXPECT_EQ(stats.loop.destroyed_pending, 1u);
  } else {
    EXPECT_EQ(stats.loop.finished, 1u);
  }
}

// After one task's fault, for a test of its own: broken, no reply at all and
// the task destroyed pending; fixed, the client saw `fixed_saw`.
void expect_one_task(Server& server, const std::optional<std::string>& saw, const std::string& fixed_saw) {
  auto stats = settled(server, 1, broken ? 1 : 0);
  if (broken) {
    EXPECT_EQ(saw, std::nullopt);
    EXPECT_EQ(stats.loop.destroyed_pending, 1u);
  } else {
    EXPECT_EQ(saw, fixed_saw);
    EXPECT_EQ(stats.loop.finished, 1u);
  }
}

constexpr std::size_t zero_window_requests = 5'000;

const bool registered = register_matrix(scenario, {
    // The request arrives a byte at a time, the reply 50 ms late.
    {.name = "KeepaliveThroughLatencyAndSlicer", .fault = Fault::latency_and_slicer,
     .expect = {.leaks = connection_left, .ending = replies_end, .got = replies(1), .then = one_task_ended}},
    // A request cut in the middle, then a FIN: dropped at EOF, no task; the
    // same in both variants: the server closed.
    {.name = "ClientCutMidRequest", .fault = Fault::cut_mid_request,
     .expect = {.ending = "eof", .got = "",
                .then = [](Server& server, Seen&) { EXPECT_EQ(server.stats().loop.started, 0u); }},
     .cut_at = 5},
    // A client that says nothing, cut by a deadline (timeout closes it after
    // 200 ms): nothing to answer, so both variants close.
    {.name = "SilentClientWithADeadline", .fault = Fault::silent_client,
     .expect = {.ending = "eof", .settle = [](Server& server, Proxy&, Seen&) {
                  ASSERT_TRUE(closecheck::eventually([&] { return server.stats().connections == 0; }));
                }}},
    // A zero-window client: it writes 5,000 PINGs and reads nothing until the
    // proxy stops stalling. Fixed: the server stops reading while 16 KiB of
    // replies are queued (tasks stay bounded), then answers every one, in order.
    {.name = "ZeroWindowClient", .fault = Fault::zero_window,
     .expect = {.leaks = connection_left, .ending = replies_end, .got = replies(zero_window_requests),
                .then = [](Server& server, Seen&) {
                  auto stats = settled(server, zero_window_requests, broken ? 1 : 0);
                  if (broken) {
                    EXPECT_EQ(stats.loop.destroyed_pending, zero_window_requests);
                  } else {
                    EXPECT_LE(stats.loop.peak_live, max_queued_bytes / 6 + 1);
                  }
                }},
     .requests = zero_window_requests, .settle_time = answer_wait},
});

}  // namespace

// The target's line is cut in the middle (limit_data, then a FIN): the
// forward ends at EOF and the half line is not relayed.
TEST(DroppedTaskFault, ForwardTargetCutMidLine) {
  Server server;
  Target target;
  std::optional<std::string> client_saw, target_saw;
  std::string toward_target;
  auto leaks = closecheck::Leaks(
      broken ? std::vector<closecheck::Expected>{{1, closecheck::tcp(TcpState::close_wait).local(server.address())},
                                                 {1, closecheck::tcp(TcpState::close_wait).peer("127.0.0.1:*")}}
             : std::vector<closecheck::Expected>{},
      [&] {
        Proxy proxy(target.port(), {.downstream = {.limit_data = 5, .limit_cut = Cut::half_close}});
        toward_target = proxy.address();
        auto client = connect(server);
        fixtures::send_all(client.get(), "FORWARD " + std::to_string(proxy.port()) + "\n");
        ::shutdown(client.get(), SHUT_WR);
        auto accepted = target.accept();
        fixtures::send_all(accepted.get(), "hello world\n");
        ::shutdown(accepted.get(), SHUT_WR);
        client_saw = transcript(client.get(), wait_for_answer());
        target_saw = transcript(accepted.get(), wait_for_answer());
        EXPECT_TRUE(proxy.wait_fired(What::limit_data));
      });
  EXPECT_TRUE(leaks);
  auto stats = settled(server, 1, broken ? 1 : 0);
  if (broken) {
    EXPECT_EQ(client_saw, std::nullopt);
    EXPECT_EQ(target_saw, std::nullopt);
    EXPECT_EQ(stats.loop.destroyed_pending, 1u);
    bool forward_to_proxy = false;
    for (const auto& fd : leaks.leaked) forward_to_proxy |= fd.socket && fd.socket->peer == toward_target;
    EXPECT_TRUE(forward_to_proxy) << "the forward's socket, its peer the proxy";
  } else {
    EXPECT_EQ(client_saw, "FORWARD 1 open\nFORWARD 1 closed\n");
    EXPECT_EQ(target_saw, "") << "the server closed the forward";
    EXPECT_EQ(stats.loop.finished, 1u);
  }
}

// The target resets the forward 50 ms after it is connected (reset_peer).
TEST(DroppedTaskFault, ForwardTargetResets) {
  Server server;
  Target target;
  std::optional<std::string> saw;
  auto leaks = closecheck::Leaks(
      broken ? std::vector<closecheck::Expected>{{1, closecheck::tcp(TcpState::close_wait).local(server.address())},
                                                 {1, closecheck::tcp(TcpState::close)}}  // reset, never closed
             : std::vector<closecheck::Expected>{},
      [&] {
        Proxy proxy(target.port(), {.downstream = {.reset_peer = 50ms}});
        auto client = connect(server);
        fixtures::send_all(client.get(), "FORWARD " + std::to_string(proxy.port()) + "\n");
        ::shutdown(client.get(), SHUT_WR);
        auto accepted = target.accept();
        EXPECT_TRUE(proxy.wait_fired(What::reset_peer));
        saw = transcript(client.get(), wait_for_answer());
      });
  EXPECT_TRUE(leaks);
  expect_one_task(server, saw, "FORWARD 1 open\nFORWARD 1 failed: Connection reset by peer\n");
}

// The client half-closes and never reads its replies, then closes with them
// unread (an RST). Fixed: it had answered and closed already, nothing left.
// Broken: nothing to read, so the close is a plain FIN, and the connection stays.
TEST(DroppedTaskFault, ClientNeverReadsTheReplies) {
  constexpr int pings = 100;
  Server server;
  std::size_t expected_bytes = 0;
  for (int i = 0; i < pings; ++i) expected_bytes += ("PONG " + std::to_string(i) + "\n").size();
  auto leaks = closecheck::Leaks(connection_left(server), [&] {
    Proxy proxy(server.endpoint().port());
    auto client = fixtures::connect_tcp("127.0.0.1", proxy.port());
    std::string all;
    for (int i = 0; i < pings; ++i) all += "PING " + std::to_string(i) + "\n";
    fixtures::send_all(client.get(), all);
    ::shutdown(client.get(), SHUT_WR);
    if (broken) {
      EXPECT_FALSE(proxy.wait_fired(What::eof, 2, missing_wait)) << "the server never closes";
    } else {
      ASSERT_TRUE(proxy.wait([&](const Stats& s) { return s.bytes_downstream == expected_bytes; }));
      ASSERT_TRUE(proxy.wait_fired(What::eof, 2)) << "the server closed after the last reply";
    }
    client.reset();  // with the replies unread: an RST
    if (!broken) EXPECT_TRUE(proxy.wait_idle());
  });
  EXPECT_TRUE(leaks);
  auto stats = settled(server, pings, broken ? 1 : 0);
  EXPECT_EQ(stats.loop.destroyed_pending, broken ? static_cast<std::size_t>(pings) : 0u);
}
