// dropped-task: recovery from EMFILE (label fault).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <optional>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "scenario.hpp"

using namespace dropped_task;
using namespace fixtures::fault;
using namespace std::chrono_literals;

namespace {

class Probe : public ServerProbe<Server> {
  void warm() override {
    auto client = connect(server_);
    fixtures::send_all(client.get(), "PING warm-up\n");
    ::shutdown(client.get(), SHUT_WR);
    (void)transcript(client.get(), wait_for_answer());
    (void)settled(server_, 1, broken ? 1 : 0);
  }
};

}  // namespace

// Clients that stay connected (each with a PING) exhaust RLIMIT_NOFILE in a
// forked child. The shared server backs off on accept errors (a bounded count
// per second, no busy loop). When the first clients close, the fixed server,
// having answered them, closes their connections and serves the clients that
// waited in the backlog; the broken one keeps them in CLOSE_WAIT (their PINGs
// were never answered) and never gets to the others.
TEST(DroppedTaskFault, RecoversFromEmfileWithoutSpinning) {
  std::size_t n = 0;
  // Broken: no client is answered. They share one missing_wait, not one each.
  std::optional<std::chrono::steady_clock::time_point> silence_ends;
  auto wait = [&] {
    if (!silence_ends) silence_ends = std::chrono::steady_clock::now() + missing_wait;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*silence_ends - std::chrono::steady_clock::now());
    return broken ? std::max(left, 0ms) : answer_wait;
  };
  auto pong = [](std::size_t i) { return "PONG " + std::to_string(i) + "\n"; };
  EmfileRecovery<>{
      .server = [] { return std::make_unique<Probe>(); },
      .connect = [&](std::uint16_t port, bool) {
        auto c = fixtures::connect_tcp("127.0.0.1", port);
        fixtures::send_all(c.get(), "PING " + std::to_string(n++) + "\n");
        return c;
      },
      .served = [&](fixtures::UniqueFd& c, std::size_t i) {
        auto reply = fixtures::read_until(c.get(), '\n', wait());
        ASSERT_EQ(reply, broken ? std::nullopt : std::optional<std::string>(pong(i)));
        c.reset();  // FIN
      },
      .answered = [&](fixtures::UniqueFd& c, std::size_t i) {
        auto reply = fixtures::read_until(c.get(), '\n', wait());
        if (broken) EXPECT_EQ(reply, std::nullopt) << "never accepted: the first clients' fds stay in CLOSE_WAIT";
        else [&] { ASSERT_EQ(reply, pong(i)) << "served once fds were free"; }();
        return reply.has_value();
      },
      .recovers = !broken,
  }.run();
}
