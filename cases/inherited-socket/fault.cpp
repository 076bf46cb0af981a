// inherited-socket under injected faults (label fault): the client reaches the
// server through fixtures::fault::Proxy while a helper (`cat`) is alive. The
// faults are the ways a peer can end or slow a connection whose server side a
// child still holds: half-close, RST, a request cut mid-line on a connection
// open at the spawn, a zero-window reader and a trickled request. Fixed: the
// peer sees the close at once under every one, and cat holds nothing. Broken:
// the child's copy is asserted (state, addresses) and the missing FIN is a
// hang cut by a deadline, until the helper is ended. EMFILE: the shared
// server backs off, and recovers in both variants (the leak is in cat's fd
// table, not the server's: emfile.cpp).
// The fault matrix (fixtures/fault/matrix.hpp) runs the faults: each row
// plays its own client (Fault::custom) through the fault's toxics, and the
// leak check of this process expects nothing in either variant (the leak is
// cat's): the clients and the helper's pipe are gone by the block's end.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <thread>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/matrix.hpp"
#include "scenario.hpp"

using namespace inherited_socket;
using namespace fixtures::fault;
using namespace std::chrono_literals;

namespace {

// The server and its helpers (cat).
struct Host {
  Helpers helpers;
  Server server{helpers};
};

const Scenario<Host> scenario{
    .suite = "InheritedSocketFault",
    .port = [](const Host& h) { return h.server.endpoint().port(); },
    .hang = hang,
};

// How the server's close looks from the client while the helper lives.
const std::string expected_close = broken ? "open" : "eof";
const milliseconds deadline = broken ? hang : milliseconds(10s);

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

// What a row's client leaves for helper_exits: the helper and the clients
// still waiting for their server's FIN.
struct Waiting {
  pid_t helper = 0;
  std::vector<fixtures::UniqueFd> clients;
};
void wait_for_fin(Seen& seen, pid_t helper, std::vector<fixtures::UniqueFd> clients) {
  seen.state = std::make_shared<Waiting>(Waiting{helper, std::move(clients)});
}
std::vector<fixtures::UniqueFd> one(fixtures::UniqueFd fd) {
  std::vector<fixtures::UniqueFd> v;
  v.push_back(std::move(fd));
  return v;
}

// The end of a row, in the block: cat is ended (the reclaim, broken), each
// client then gets its FIN, and cat holds nothing.
const auto helper_exits = [](Host& h, Proxy&, Seen& seen) {
  auto& w = *std::any_cast<std::shared_ptr<Waiting>>(seen.state);
  EXPECT_TRUE(h.helpers.release());  // reclaim (broken): cat's exit closes its copy
  for (auto& c : w.clients) EXPECT_EQ(ending(c.get()), "eof");
  expect_held(w.helper, {});
  w.clients.clear();
};

const bool registered = register_matrix(scenario, {
    // The client half-closes right after its request: its FIN reaches a socket
    // only cat holds (broken), which goes to CLOSE_WAIT there; the server's FIN
    // never comes back until cat exits.
    {.name = "ClientHalfClosesWhileTheHelperLives", .fault = Fault::custom,
     .expect = {.ending = expected_close, .settle = helper_exits},
     .client = [](Host& h, Proxy& proxy, Seen& seen) {
       auto t = spawn_through(proxy, [](int fd) { ::shutdown(fd, SHUT_WR); });
       expect_held(t.helper, in_helper(h.server, TcpState::close_wait));
       seen.ending = ending(t.client.get(), nullptr, deadline);
       // Fixed: both FINs pass the proxy, in either order (the server may close
       // before the proxy has read the client's). Broken: only the client's.
       if (broken) EXPECT_EQ(proxy.stats().fired(What::eof), 1u) << "the server's FIN held back";
       else EXPECT_TRUE(proxy.wait_fired(What::eof, 2)) << "the server's FIN passed on";
       wait_for_fin(seen, t.helper, one(std::move(t.client)));
     }},
    // The client resets (SO_LINGER 0) and the proxy passes the RST on. Broken: no
    // FIN came first; the RST ends the connection, but cat keeps a descriptor for
    // the dead socket, which has left the TCP tables: only its fd table shows it.
    {.name = "ClientResetsWhileTheHelperHoldsIt", .fault = Fault::custom,
     .expect = {.ending = expected_close},
     .client = [](Host& h, Proxy& proxy, Seen& seen) {
       auto t = spawn_through(proxy);
       expect_held(t.helper, in_helper(h.server, TcpState::established));
       ino_t inode = 0;
       if (broken) {
         auto held = held_by(t.helper);
         ASSERT_EQ(held.size(), 1u);
         inode = held[0].socket.inode;
       }
       seen.ending = ending(t.client.get(), nullptr, deadline);
       fixtures::set_linger_zero(t.client.get());
       t.client.reset();  // RST
       ASSERT_TRUE(proxy.wait_fired(What::reset));
       ASSERT_TRUE(proxy.wait_idle());
       expect_held(t.helper, {});  // nothing in any TCP table
       if (broken) EXPECT_TRUE(holds_inode(t.helper, inode)) << "cat's copy of the reset socket";
       EXPECT_TRUE(h.helpers.release());
     }},
    // A second connection, open (after a ping) when the helper starts, has its
    // next request cut in the middle: limit_data lets "ping\nspa" through, then a
    // FIN. The server ends that session at EOF and closes; broken, cat's copy
    // takes the FIN (CLOSE_WAIT) and sends none back. No answer to the half request.
    {.name = "RequestCutOnAConnectionTheHelperInherited", .fault = Fault::custom,
     .expect = {.ending = expected_close, .got = "", .settle = helper_exits},
     .toxics = toxics(Fault::cut_mid_request, 8),
     .client = [](Host& h, Proxy& proxy, Seen& seen) {
       auto open = fixtures::connect_tcp("127.0.0.1", proxy.port());
       fixtures::send_all(open.get(), "ping\n");
       ASSERT_EQ(fixtures::read_until(open.get(), '\n', 10s), "pong\n");
       auto s = spawn_helper(h.server);  // directly: this connection is not cut
       fixtures::send_all(open.get(), "spawn\n");
       ASSERT_TRUE(proxy.wait_fired(What::limit_data));
       auto expected = in_helper(h.server, TcpState::close_wait);
       if (broken) expected.push_back({TcpState::established, h.server.address(), s.client_address});
       expect_held(s.helper, expected);
       seen.ending = ending(open.get(), &seen.got, deadline);
       EXPECT_EQ(ending(s.client.get(), nullptr, deadline), expected_close);
       EXPECT_EQ(h.helpers.pids().size(), 1u) << "the cut request started nothing";
       auto clients = one(std::move(open));
       clients.push_back(std::move(s.client));
       wait_for_fin(seen, s.helper, std::move(clients));
     }},
    // A zero-window reader: the proxy stops reading answers (4 KiB buffers) while
    // the client pipelines 20,000 pings and a spawn; then it reads again. Every
    // answer arrives, in order: the data is in the socket, which cat shares. Only
    // the FIN depends on the last descriptor.
    {.name = "ZeroWindowReaderGetsEveryAnswerButNoClose", .fault = Fault::custom,
     .expect = {.ending = expected_close, .settle = helper_exits},
     .toxics = toxics(Fault::zero_window),
     .proxy = proxy_options(Fault::zero_window),
     .client = [](Host& h, Proxy& proxy, Seen& seen) {
       constexpr int pings = 20'000;
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
       expect_held(helper, in_helper(h.server, TcpState::established));
       seen.ending = ending(client.get(), nullptr, deadline);
       wait_for_fin(seen, helper, one(std::move(client)));
     }},
    // A slow client: the request arrives a byte a millisecond, the answer (and the
    // FIN after it) 50 ms late. The delay changes nothing: the FIN is missing
    // while cat lives, and comes at once when it is fixed.
    {.name = "TrickledRequestAndLateAnswer", .fault = Fault::custom,
     .expect = {.ending = expected_close, .settle = helper_exits},
     .toxics = toxics(Fault::latency_and_slicer),
     .client = [](Host& h, Proxy& proxy, Seen& seen) {
       auto t = spawn_through(proxy);
       expect_held(t.helper, in_helper(h.server, TcpState::established));
       seen.ending = ending(t.client.get(), nullptr, deadline);
       wait_for_fin(seen, t.helper, one(std::move(t.client)));
     }},
});

}  // namespace
