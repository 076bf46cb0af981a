// inherited-socket under injected faults (label fault): the client reaches the
// server through fixtures::fault::Proxy while a helper (`cat`) is alive. The
// faults are the ways a peer can end or slow a connection whose server side a
// child still holds: half-close, RST, a request cut mid-line on a connection
// open at the spawn, a zero-window reader and a trickled request. Fixed: the
// peer sees the close at once under every one, and cat holds nothing. Broken:
// the child's copy is asserted (state, addresses) and the missing FIN is a
// hang cut by a deadline, until the helper is ended. EMFILE: the shared
// server backs off, and recovers in both variants (the leak is in cat's fd
// table, not the server's).
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <thread>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/expect_emfile.hpp"
#include "fixtures/fault/fd_limit.hpp"
#include "fixtures/fault/proxy.hpp"
#include "scenario.hpp"

using namespace inherited_socket;
using namespace fixtures::fault;
using namespace std::chrono_literals;

namespace {

// How the server's close looks from the client while the helper lives.
std::string expected_close() { return broken ? "open" : "eof"; }

// Broken: cat's copy of the server side of one connection through the proxy
// (the server's peer is the proxy, any port), in `state`; fixed: nothing.
std::vector<Held> in_helper(const Server& server, TcpState state) {
  if (!broken) return {};
  return {{state, server.address(), "127.0.0.1:*"}};
}

void expect_held(pid_t helper, const std::vector<Held>& expected) {
  auto verdict = expect_held_by(helper, expected);
  EXPECT_TRUE(verdict.ok) << verdict.message;
}

struct Through {
  fixtures::UniqueFd client;
  pid_t helper = 0;
};

// A client asks, through the proxy, for the helper (then does `then`, e.g. a
// half-close) and reads the answer "started <pid>\n".
Through spawn_through(const Proxy& proxy, const std::function<void(int)>& then = {}) {
  Through t{fixtures::connect_tcp("127.0.0.1", proxy.port())};
  fixtures::send_all(t.client.get(), "spawn\n");
  if (then) then(t.client.get());
  auto answer = fixtures::read_until(t.client.get(), '\n', 10s).value_or("(no answer)");
  if (answer.rfind("started ", 0) != 0) throw std::runtime_error("the helper did not start: " + answer);
  t.helper = static_cast<pid_t>(std::stol(answer.substr(8)));
  return t;
}

// Reads until `lines` lines have come (nullopt at EOF or after 10 s of silence).
std::optional<std::string> read_lines(int fd, std::size_t lines) {
  std::string got;
  while (static_cast<std::size_t>(std::count(got.begin(), got.end(), '\n')) < lines) {
    auto more = fixtures::read_until(fd, '\n', 10s);
    if (!more || more->empty()) return std::nullopt;
    got += *more;
  }
  return got;
}

// Whether process pid has a descriptor for socket inode `inode` (its fd
// table, which shows a socket the TCP tables no longer list).
bool holds_inode(pid_t pid, ino_t inode) {
  auto want = "socket:[" + std::to_string(inode) + "]";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec)) {
    std::error_code link_ec;
    if (std::filesystem::read_symlink(entry.path(), link_ec).string() == want) return true;
  }
  return false;
}

}  // namespace

// The client half-closes right after its request: its FIN reaches a socket
// only cat holds (broken), which goes to CLOSE_WAIT there; the server's FIN
// never comes back until cat exits.
TEST(InheritedSocketFault, ClientHalfClosesWhileTheHelperLives) {
  Helpers helpers;
  Server server(helpers);
  Proxy proxy(server.endpoint().port());
  auto t = spawn_through(proxy, [](int fd) { ::shutdown(fd, SHUT_WR); });
  expect_held(t.helper, in_helper(server, TcpState::close_wait));
  EXPECT_EQ(ending(t.client.get(), nullptr, broken ? hang : 10s), expected_close());
  // Fixed: both FINs pass the proxy, in either order (the server may close
  // before the proxy has read the client's). Broken: only the client's.
  if (broken) EXPECT_EQ(proxy.stats().fired(What::eof), 1u) << "the server's FIN held back";
  else EXPECT_TRUE(proxy.wait_fired(What::eof, 2)) << "the server's FIN passed on";
  EXPECT_TRUE(helpers.release());  // reclaim (broken): cat's exit closes its copy
  EXPECT_EQ(ending(t.client.get()), "eof");
  expect_held(t.helper, {});
}

// The client resets (SO_LINGER 0) and the proxy passes the RST on. Broken: no
// FIN came first; the RST ends the connection, but cat keeps a descriptor for
// the dead socket, which has left the TCP tables: only its fd table shows it.
TEST(InheritedSocketFault, ClientResetsWhileTheHelperHoldsIt) {
  Helpers helpers;
  Server server(helpers);
  Proxy proxy(server.endpoint().port());
  auto t = spawn_through(proxy);
  expect_held(t.helper, in_helper(server, TcpState::established));
  ino_t inode = 0;
  if (broken) {
    auto held = held_by(t.helper);
    ASSERT_EQ(held.size(), 1u);
    inode = held[0].socket.inode;
  }
  EXPECT_EQ(ending(t.client.get(), nullptr, broken ? hang : 10s), expected_close());
  fixtures::set_linger_zero(t.client.get());
  t.client.reset();  // RST
  ASSERT_TRUE(proxy.wait_fired(What::reset));
  ASSERT_TRUE(proxy.wait_idle());
  expect_held(t.helper, {});  // nothing in any TCP table
  if (broken) EXPECT_TRUE(holds_inode(t.helper, inode)) << "cat's copy of the reset socket";
  EXPECT_TRUE(helpers.release());
}

// A second connection, open (after a ping) when the helper starts, has its
// next request cut in the middle: limit_data lets "ping\nspa" through, then a
// FIN. The server ends that session at EOF and closes; broken, cat's copy
// takes the FIN (CLOSE_WAIT) and sends none back.
TEST(InheritedSocketFault, RequestCutOnAConnectionTheHelperInherited) {
  Helpers helpers;
  Server server(helpers);
  Proxy proxy(server.endpoint().port(), {.upstream = {.limit_data = 8, .limit_cut = Cut::half_close}});
  auto open = fixtures::connect_tcp("127.0.0.1", proxy.port());
  fixtures::send_all(open.get(), "ping\n");
  ASSERT_EQ(fixtures::read_until(open.get(), '\n', 10s), "pong\n");
  auto s = spawn_helper(server);  // directly: this connection is not cut
  fixtures::send_all(open.get(), "spawn\n");
  ASSERT_TRUE(proxy.wait_fired(What::limit_data));
  auto expected = in_helper(server, TcpState::close_wait);
  if (broken) expected.push_back({TcpState::established, server.address(), s.client_address});
  expect_held(s.helper, expected);
  std::string got;
  EXPECT_EQ(ending(open.get(), &got, broken ? hang : 10s), expected_close());
  EXPECT_EQ(got, "") << "no answer to the half request";
  EXPECT_EQ(ending(s.client.get(), nullptr, broken ? hang : 10s), expected_close());
  EXPECT_EQ(helpers.pids().size(), 1u) << "the cut request started nothing";
  EXPECT_TRUE(helpers.release());
  EXPECT_EQ(ending(open.get()), "eof");
  EXPECT_EQ(ending(s.client.get()), "eof");
  expect_held(s.helper, {});
}

// A zero-window reader: the proxy stops reading answers (4 KiB buffers) while
// the client pipelines 20,000 pings and a spawn; then it reads again. Every
// answer arrives, in order: the data is in the socket, which cat shares. Only
// the FIN depends on the last descriptor.
TEST(InheritedSocketFault, ZeroWindowReaderGetsEveryAnswerButNoClose) {
  constexpr int pings = 20'000;
  Helpers helpers;
  Server server(helpers);
  Proxy proxy(server.endpoint().port(), {.downstream = {.stall = true}}, {.rcvbuf = 4096});
  auto client = fixtures::connect_tcp("127.0.0.1", proxy.port());
  std::string all;
  for (int i = 0; i < pings; ++i) all += "ping\n";
  std::thread writer([&] {
    try {
      fixtures::send_all(client.get(), all + "spawn\n");
    } catch (const std::exception&) {  // the test fails on the missing answers
    }
  });
  EXPECT_TRUE(proxy.wait([](const Stats& st) { return st.bytes_upstream > 0; }));
  EXPECT_EQ(proxy.stats().bytes_downstream, 0u);
  proxy.set({});  // the client reads again
  auto got = read_lines(client.get(), pings + 1);
  if (!got) ::shutdown(client.get(), SHUT_RDWR);  // bounded: ends a writer still blocked
  writer.join();
  ASSERT_TRUE(got) << "the answers stopped";
  std::string pongs;
  for (int i = 0; i < pings; ++i) pongs += "pong\n";
  ASSERT_TRUE(got->size() > pongs.size() && got->compare(0, pongs.size(), pongs) == 0)
      << "every answer, in order (" << got->size() << " bytes)";
  auto last = got->substr(pongs.size());
  ASSERT_EQ(last.rfind("started ", 0), 0u) << last;
  auto helper = static_cast<pid_t>(std::stol(last.substr(8)));
  expect_held(helper, in_helper(server, TcpState::established));
  EXPECT_EQ(ending(client.get(), nullptr, broken ? hang : 10s), expected_close());
  EXPECT_TRUE(helpers.release());
  EXPECT_EQ(ending(client.get()), "eof");
  expect_held(helper, {});
}

// A slow client: the request arrives a byte a millisecond, the answer (and the
// FIN after it) 50 ms late. The delay changes nothing: the FIN is missing
// while cat lives, and comes at once when it is fixed.
TEST(InheritedSocketFault, TrickledRequestAndLateAnswer) {
  Helpers helpers;
  Server server(helpers);
  Proxy proxy(server.endpoint().port(), {.upstream = {.slice_bytes = 1, .slice_delay = 1ms},
                                         .downstream = {.latency = 50ms}});
  auto t = spawn_through(proxy);
  expect_held(t.helper, in_helper(server, TcpState::established));
  EXPECT_EQ(ending(t.client.get(), nullptr, broken ? hang : 10s), expected_close());
  EXPECT_TRUE(helpers.release());
  EXPECT_EQ(ending(t.client.get()), "eof");
  expect_held(t.helper, {});
}
