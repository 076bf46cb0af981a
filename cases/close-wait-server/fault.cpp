// close-wait-server under injected faults (label fault): the client talks to
// the server through fixtures::fault::Proxy. Fixed: every fault ends with
// nothing left open, in bounded time. Broken: its failure is contained and
// asserted: the CLOSE_WAIT it leaks, and the close it never sends, cut by a
// deadline. A reset never triggers the bug (the broken session ignores only EOF).
// The fault matrix (fixtures/fault/matrix.hpp) runs the faults; what is below
// is this case's scenario and what each variant does under each fault.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/matrix.hpp"
#include "scenario.hpp"

using namespace close_wait_server;
using namespace fixtures::fault;

namespace {

// A line server: "request 0\n" is answered "ok: request 0\n".
const Scenario<Server> scenario{
    .suite = "CloseWaitServerFault",
    .port = [](const Server& s) { return s.endpoint().port(); },
    .request = [](std::size_t i) { return "request " + std::to_string(i) + "\n"; },
    .answer = [](const std::string& request) { return "ok: " + request; },
};

// Broken: the server's socket of the one client, in CLOSE_WAIT (expected_after); fixed: nothing.
const LeaksOf<Server> close_wait = [](const Server& s) { return expected_after(1, s); };
// What the server's close looks like from the client: fixed, "eof"; broken,
// none (the hang, cut by the deadline).
const std::string server_close = broken ? "open" : "eof";
const auto sessions_end = [](Server& server, Proxy&, Seen&) {
  ASSERT_TRUE(closecheck::eventually([&] { return server.sessions() == 0; }));
};

const bool registered = register_matrix(scenario, {
    // The client half-closes after its request: the FIN passes through, the
    // answer still comes back; the fixed server closes, the broken one never does.
    {.name = "ClientHalfCloses", .fault = Fault::client_half_closes,
     .expect = {.leaks = close_wait, .ending = server_close, .got = scenario.answers(1),
                .then = [](Server& server, Seen& seen) {
                  EXPECT_EQ(seen.proxy.fired(What::eof), broken ? 1u : 2u);
                  EXPECT_EQ(server.sessions(), broken ? 1u : 0u);
                }}},
    // The request is cut in the middle (limit_data, then a FIN): no answer; the
    // fixed server closes at the EOF, the broken one keeps the half request and the socket.
    {.name = "ClientCutMidRequest", .fault = Fault::cut_mid_request,
     .expect = {.leaks = close_wait, .ending = server_close, .got = ""}, .cut_at = 3},
    // A client that connects and says nothing, cut by a deadline (toxiproxy's
    // timeout closes it after 200 ms): the proxy's timeout closed the client's side.
    {.name = "SilentClientWithADeadline", .fault = Fault::silent_client,
     .expect = {.leaks = close_wait, .ending = "eof"}},
    // A slow client: the request arrives one byte a millisecond, the answer 50 ms late.
    {.name = "LatencyAndSlicer", .fault = Fault::latency_and_slicer,
     .expect = {.leaks = close_wait, .ending = server_close, .got = scenario.answers(1)}},
    // A zero-window client: it stops reading while it writes 20,000 requests,
    // then reads again. Every answer arrives, in order.
    {.name = "ZeroWindowClient", .fault = Fault::zero_window,
     .expect = {.leaks = close_wait, .ending = server_close, .got = scenario.answers(20'000)},
     .requests = 20'000},
    // The client resets after its answer (limit_data on the answer, then RST):
    // both variants close the session, the bug needs a FIN.
    {.name = "ClientResetsAfterTheAnswer", .fault = Fault::client_resets_after_answer,
     .expect = {.ending = "reset", .got = scenario.answers(1), .settle = sessions_end}},
    // The client closes without reading its answer: its close is an RST (unread
    // data), passed on to the server. Clean in both variants.
    {.name = "ClientClosesWithTheAnswerUnread", .fault = Fault::client_closes_answer_unread,
     .expect = {.settle = sessions_end}},
});

}  // namespace

// A planted double close, the sibling bug of every close path: the client's
// error path closes the connection when the server resets it, and the owner
// (UniqueFd) closes the same number again when it goes. Had another thread
// opened an fd in between, that second close would have closed it. The
// recorder names both closes and the open; both variants (the client's bug).
TEST(CloseWaitServerFault, ADoubleCloseOnTheClientsErrorPathIsNamed) {
  if (!closecheck::recording_open_sites()) GTEST_SKIP() << "no open-site recorder in this build (ThreadSanitizer)";
  Server server;
  closecheck::take_bad_closes();
  std::string got;
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    Proxy proxy(server.endpoint().port(), toxics(Fault::client_resets_after_answer, 0, std::string("ok: hello\n").size()));
    auto client = fixtures::connect_tcp("127.0.0.1", proxy.port());
    fixtures::send_all(client.get(), "hello\n");
    if (ending(client.get(), &got) == "reset") {
      ::close(client.get());  // FLAW: the owner closes it again
    }
    ASSERT_TRUE(closecheck::eventually([&] { return server.sessions() == 0; }));
  }));
  auto closes = closecheck::take_bad_closes();  // taken: the per-test check does not fail on it
  ASSERT_EQ(closes.size(), 1u);
  const auto& bad = closes[0];
  ASSERT_TRUE(bad.closed_before.known() && bad.closed_now.known() && bad.opened.known())
      << closecheck::describe(bad);
  // The stray close is this test's (its exact line is the harness's own test,
  // harness/test/sites_test.cpp); the second is the owner's, in fixtures.
  const auto& before = bad.closed_before.frames[bad.closed_before.site];
  const auto& now = bad.closed_now.frames[bad.closed_now.site];
  EXPECT_TRUE(before.file.ends_with("/cases/close-wait-server/fault.cpp")) << closecheck::describe(bad);
  EXPECT_TRUE(now.function.starts_with("fixtures::UniqueFd::reset")) << closecheck::describe(bad);
  auto in_this_file = [](const closecheck::OpenSite& site) {
    return std::any_of(site.frames.begin(), site.frames.end(), [](const closecheck::Frame& f) {
      return f.file.ends_with("/cases/close-wait-server/fault.cpp");
    });
  };
  EXPECT_TRUE(in_this_file(bad.closed_now) && in_this_file(bad.opened)) << closecheck::describe(bad);
}
