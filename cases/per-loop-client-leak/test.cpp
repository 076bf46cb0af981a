// per-loop-client-leak: the same tests run against broken.cpp, fixed.cpp and
// fixed-library.cpp.
#include <gtest/gtest.h>

#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <string_view>

#include "closecheck/gtest.hpp"
#include "closecheck/netns.hpp"
#include "fixtures/http/fault_peer.hpp"
#include "fixtures/http/server.hpp"
#include "scenario.hpp"

using namespace per_loop_client_leak;
using closecheck::Kind;
using closecheck::kind;
namespace bhttp = boost::beast::http;

namespace {

// broken and fixed share Tornado's loop layer; fixed-library has the fixed one.
const bool tornado_library = std::string_view(fixtures::variant.name) != "fixed-library";

Url url_of(std::uint16_t port) { return {.port = port}; }

std::vector<closecheck::Expected> one_loop() {
  return {{1, kind(Kind::epoll)}, {1, kind(Kind::eventfd)}, {1, kind(Kind::timerfd)}};
}

// The error fetch_once() reports, or success.
boost::system::error_code fetch_error(const Url& url, std::chrono::milliseconds timeout = 10s) {
  try {
    fetch_once(url, timeout);
  } catch (const boost::system::system_error& e) {
    return e.code();
  }
  return {};
}

}  // namespace

// What one leaked loop costs: an io_context opens nothing until its first I/O
// object, then its reactor's epoll, eventfd and timerfd, and closes them when
// it is destroyed. (Boost 1.74, Linux.)
TEST(PerLoopClientLeak, AnIoContextsOwnFdsAreEpollEventfdTimerfd) {
  std::unique_ptr<asio::io_context> bare;
  EXPECT_TRUE(closecheck::Leaks({}, [&] { bare = std::make_unique<asio::io_context>(); }));
  std::shared_ptr<asio::io_context> loop;
  EXPECT_TRUE(closecheck::Leaks(one_loop(), [&] { loop = detail::new_loop(); }));
  EXPECT_TRUE(closecheck::NoLeaks([&] {
    auto again = detail::new_loop();
  }));
  loop.reset();  // closes them: checked by the per-test leak check
}

TEST(PerLoopClientLeak, OneIterationLeavesOneLoopBehind) {
  fixtures::http::Server server;
  auto before = closecheck::Snapshot::take();
  auto leaks = closecheck::Leaks(
      expected_after(1), [&] { iterations(1, url_of(server.port()), server.body()); });  // the registry owns them
  EXPECT_TRUE(leaks);
  EXPECT_EQ(registered_loops(), broken ? 1u : 0u);
  EXPECT_EQ(server.requests(), 1u);
  clear_registry();
  EXPECT_EQ(closecheck::report(closecheck::find_leaks(before)), "");
}

class PerLoopClientLeakGrowth : public ::testing::TestWithParam<std::size_t> {};

// Exactly one loop's fds per iteration, every iteration, and nothing else.
TEST_P(PerLoopClientLeakGrowth, LinearInIterations) {
  const std::size_t n = GetParam();
  const long k = broken ? 3 : 0;
  fixtures::http::Server server;
  auto count = [] { return static_cast<long>(closecheck::Snapshot::take().size()); };
  std::vector<long> growth;
  auto leaks = closecheck::Leaks(
      expected_after(n),
      [&] {
        long last = count();
        bool as_expected = true;
        for (std::size_t i = 0; i < n; ++i) {
          iterations(1, url_of(server.port()), server.body());
          // The server may still be closing its end of the connection. (Once
          // an iteration has grown otherwise, just record the rest.)
          if (as_expected) as_expected = closecheck::eventually([&] { return count() == last + k; });
          growth.push_back(count() - last);
          last += growth.back();
        }
      });
  EXPECT_TRUE(leaks);
  EXPECT_EQ(growth, std::vector<long>(n, k));
  EXPECT_EQ(registered_loops(), broken ? n : 0u);
  EXPECT_EQ(server.requests(), n);
  clear_registry();  // destroys the leaked loops: the per-test check then finds nothing
}

INSTANTIATE_TEST_SUITE_P(PerLoopClientLeak, PerLoopClientLeakGrowth, ::testing::Values(10, 50, 100),
                         [](const auto& info) { return "N" + std::to_string(info.param); });

// The per-loop cache holds client state weakly: once the clients are gone, so
// are its entries, in every variant. What stays is the registry's loops.
TEST(PerLoopClientLeak, TheWeakCacheIsNotTheLeak) {
  fixtures::http::Server server;
  EXPECT_TRUE(closecheck::Leaks(
      expected_after(5), [&] { iterations(5, url_of(server.port()), server.body()); }));
  EXPECT_EQ(cached_client_states(), 0u);
  EXPECT_EQ(registered_loops(), broken ? 5u : 0u);
  clear_registry();
}

// The mechanism alone, without any I/O: with Tornado's loop layer, merely
// constructing a client outside run() creates, registers and keeps a loop.
TEST(PerLoopClientLeak, AClientOutsideRunBindsToALoopMadeForIt) {
  auto leaks = closecheck::Leaks(
      tornado_library ? one_loop() : std::vector<closecheck::Expected>{},
      [&] {
        HttpClient client;
        EXPECT_EQ(client.loop() != nullptr, tornado_library);
        EXPECT_EQ(cached_client_states(), tornado_library ? 1u : 0u);
      });
  EXPECT_TRUE(leaks);
  EXPECT_EQ(cached_client_states(), 0u);  // the client is gone...
  EXPECT_EQ(registered_loops(), tornado_library ? 1u : 0u);  // ...its loop is not
  clear_registry();
}

TEST(PerLoopClientLeak, CurrentOutsideRun) {
  if (tornado_library) {
    auto leaks = closecheck::Leaks(one_loop(), [] {
      auto& loop = Loop::current();
      EXPECT_EQ(&Loop::current(), &loop);  // now current: made once, until run() clears it
    });
    EXPECT_TRUE(leaks);
    EXPECT_EQ(registered_loops(), 1u);
    clear_registry();
  } else {
    EXPECT_THROW(Loop::current(), std::logic_error);
  }
}

// --- Bad input: the client reports an error; fixed variants leak nothing ---------

TEST(PerLoopClientLeak, ServerClosesEarly) {
  fixtures::http::FaultPeer peer(fixtures::http::Fault::close_early);
  boost::system::error_code ec;
  auto leaks = closecheck::Leaks(expected_after(1), [&] { ec = fetch_error(url_of(peer.port())); });
  EXPECT_EQ(ec, bhttp::error::end_of_stream) << ec.message();
  EXPECT_TRUE(leaks);
  clear_registry();
}

TEST(PerLoopClientLeak, ServerAnswersGarbage) {
  fixtures::http::FaultPeer peer(fixtures::http::Fault::garbage);
  boost::system::error_code ec;
  auto leaks = closecheck::Leaks(expected_after(1), [&] { ec = fetch_error(url_of(peer.port())); });
  EXPECT_EQ(ec, bhttp::error::bad_version) << ec.message();
  EXPECT_TRUE(leaks);
  clear_registry();
}

TEST(PerLoopClientLeak, ServerNeverAnswersUntilTheDeadline) {
  fixtures::http::FaultPeer peer(fixtures::http::Fault::silent);
  boost::system::error_code ec;
  auto start = std::chrono::steady_clock::now();
  auto leaks = closecheck::Leaks(expected_after(1),
                                 [&] { ec = fetch_error(url_of(peer.port()), 300ms); });
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ec, boost::beast::error::timeout) << ec.message();
  EXPECT_GE(took, 300ms);
  EXPECT_LT(took, 10s);
  EXPECT_TRUE(leaks);
  clear_registry();
}

TEST(PerLoopClientLeak, NobodyListens) {
  // The freed port must stay free: no other test may take it meanwhile.
  std::string why;
  if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
  std::uint16_t port;
  {
    fixtures::http::FaultPeer gone(fixtures::http::Fault::close_early);
    port = gone.port();
  }
  boost::system::error_code ec;
  auto leaks = closecheck::Leaks(expected_after(1), [&] { ec = fetch_error(url_of(port)); });
  EXPECT_EQ(ec, asio::error::connection_refused) << ec.message();
  EXPECT_TRUE(leaks);
  clear_registry();
}
