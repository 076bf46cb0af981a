// The canonical scenario, shared by the tests and ci/corpus: a client asks the
// server to start its helper; the server answers and closes the connection,
// then the server itself stops. The leak is outside this process: the helper
// (a real exec'd `cat`) holds what it inherited.
#pragma once

#include <fnmatch.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"
#include "closecheck/sweep.hpp"
#include "fixtures/net.hpp"
#include "fixtures/variant.hpp"
#include "server.hpp"

namespace inherited_socket {

inline constexpr const bool& broken = fixtures::variant.broken;
// How long a FIN that the helper holds back is waited for (the broken
// variant): the fixed one sends it at once.
inline constexpr std::chrono::milliseconds hang{300};
using closecheck::TcpState;

// Every state that a socket with a descriptor can be in.
inline constexpr std::uint32_t any_state = ~closecheck::state_bit(TcpState::time_wait);

// A socket another process should hold: its state, and local and peer as globs.
struct Held {
  TcpState state;
  std::string local, peer = "*";
};

// The TCP sockets process pid holds and this process does not.
inline std::vector<closecheck::HeldElsewhere> held_by(pid_t pid) {
  std::vector<closecheck::HeldElsewhere> out;
  for (auto& h : closecheck::held_elsewhere(any_state))
    if (h.pid == pid) out.push_back(std::move(h));
  return out;
}

inline bool matches(std::vector<closecheck::HeldElsewhere> found, const std::vector<Held>& expected) {
  for (const auto& e : expected) {
    auto it = std::find_if(found.begin(), found.end(), [&](const auto& h) {
      return h.socket.state == e.state && fnmatch(e.local.c_str(), h.socket.local.c_str(), 0) == 0 &&
             fnmatch(e.peer.c_str(), h.socket.peer.c_str(), 0) == 0;
    });
    if (it == found.end()) return false;
    found.erase(it);
  }
  return found.empty();
}

inline std::string describe(const std::vector<closecheck::HeldElsewhere>& held) {
  std::string s;
  for (const auto& h : held) s += (s.empty() ? "" : "; ") + closecheck::describe(h);
  return s;
}

// Waits (with the harness's backoff) until pid holds exactly `expected`.
// The verdict's message says what it held instead.
inline closecheck::Verdict expect_held_by(pid_t pid, const std::vector<Held>& expected) {
  std::vector<closecheck::HeldElsewhere> found;
  closecheck::Verdict v;
  v.ok = closecheck::eventually([&] { return matches(found = held_by(pid), expected); });
  if (!v.ok) {
    v.message = "expected pid " + std::to_string(pid) + " to hold:\n";
    for (const auto& e : expected)
      v.message += "  " + std::string(closecheck::to_string(e.state)) + "  " + e.local + " -> " +
                   e.peer + "\n";
    if (expected.empty()) v.message += "  nothing\n";
    v.message += "but it held:\n  " + (found.empty() ? "nothing" : describe(found)) + "\n";
  }
  return v;
}

struct Spawned {
  fixtures::UniqueFd client;
  std::string client_address;  // as ss shows it
  pid_t helper = 0;
};

// A client connects and asks for the helper; the server answers
// "started <pid>" and closes its side of the connection.
inline Spawned spawn_helper(const Server& server) {
  Spawned s;
  s.client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
  s.client_address = closecheck::inspect(s.client.get())->socket->local;
  fixtures::send_all(s.client.get(), "spawn\n");
  auto answer = fixtures::read_until(s.client.get(), '\n', std::chrono::seconds(10));
  if (!answer || answer->rfind("started ", 0) != 0)
    throw std::runtime_error("the server did not start its helper: " + answer.value_or("(no answer)"));
  s.helper = static_cast<pid_t>(std::stol(answer->substr(8)));
  return s;
}

// What the helper holds once the server has closed the connection (and, with
// server_stopped, its listening socket): broken, the connection (ESTABLISHED:
// the peer never got a FIN) and the listening port; fixed, nothing.
inline std::vector<Held> expected_in_helper(const std::string& server, const std::string& client,
                                            bool server_stopped) {
  if (!broken) return {};
  std::vector<Held> held{{TcpState::established, server, client}};
  if (server_stopped) held.push_back({TcpState::listen, server});
  return held;
}

// Binds a new listening socket to the port, with SO_REUSEADDR as Asio's
// acceptor does (so TIME_WAIT does not count): what restarting the server does.
inline error_code rebind(std::uint16_t port) {
  asio::io_context io;
  tcp::acceptor acceptor(io);
  error_code ec;
  acceptor.open(tcp::v4(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(tcp::endpoint(asio::ip::address_v4::loopback(), port), ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  return ec;
}

}  // namespace inherited_socket
