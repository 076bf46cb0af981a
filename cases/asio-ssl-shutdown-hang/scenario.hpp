// What the tests and ci/corpus share: a TLS peer that misbehaves in the
// ways that matter, and what each variant leaves open.
#pragma once

#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "fixtures/tls/channel.hpp"  // fixtures::tls::Channel, a blocking, bounded TLS client socket
#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"
#include "closecheck/sweep.hpp"
#include "fixtures/corpus.hpp"  // mark(): the report's time axis
#include "fixtures/net.hpp"
#include "fixtures/variant.hpp"
#include "server.hpp"

namespace asio_ssl_shutdown_hang {

inline constexpr const bool& broken = fixtures::variant.broken;
using closecheck::TcpState;

// A TLS client that verifies the server against the test CA and exchanges
// one line, so that the server's session is established and has its read
// pending. What it does when the server's close_notify comes is up to the test.
class Peer {
 public:
  explicit Peer(const Server& server) : Peer(server.port()) {}
  // Through a proxy, say: the server at `port`.
  explicit Peer(std::uint16_t port) : Peer(fixtures::connect_tcp("127.0.0.1", port)) {}
  // On a connection already made (a client waiting in the backlog).
  explicit Peer(fixtures::UniqueFd fd, std::chrono::milliseconds timeout = std::chrono::seconds(10))
      : ctx_((fixtures::tls::ignore_sigpipe(), fixtures::tls::client_context(CLOSECHECK_TEST_CA))),
        channel_(std::move(fd), timeout),
        address_(channel_.local_address()) {
    channel_.start_tls(ctx_.get());
    if (auto answer = exchange("hello\n"); answer != "ok: hello\n")
      throw std::runtime_error("unexpected answer: " + answer);
  }

  // Sends one line, returns the server's answer line.
  std::string exchange(const std::string& line) {
    channel_.write_all(line);
    std::string answer;
    while (answer.find('\n') == std::string::npos) {
      auto more = channel_.read_some();
      if (more.empty()) throw std::runtime_error("the server closed before answering");
      answer += more;
    }
    return answer;
  }
  fixtures::tls::Channel& channel() { return channel_; }

  const std::string& address() const { return address_; }  // "127.0.0.1:40000"
  int fd() const { return channel_.fd(); }

  // The server's close_notify has reached this socket (it is readable); false after 10 s.
  bool close_notify_arrived() { return fixtures::wait_readable(fd(), std::chrono::seconds(10)); }
  // Bytes in this socket's receive queue: the unread close_notify record.
  int unread() const {
    int n = -1;
    ioctl(channel_.fd(), FIONREAD, &n);
    return n;
  }
  // Reads the server's close_notify (true if that is what came).
  bool read_close_notify() { return channel_.read_some().empty(); }
  // Sends close_notify back (after reading the server's): the polite peer.
  bool answer_close_notify() { return channel_.unwrap(); }
  // Closes TCP without close_notify; with the close_notify still unread,
  // the kernel sends RST instead of FIN.
  void close_tcp() { channel_.close(); }

 private:
  fixtures::tls::SslCtx ctx_;
  fixtures::tls::Channel channel_;
  std::string address_;
};

// Checks that ignore the test's own peer sockets (their addresses are filled
// in as the peers connect, inside the checked block).
inline closecheck::Options ignoring(const std::vector<std::string>& own) {
  return {.ignore = {[&own](const closecheck::Fd& fd) {
    return fd.socket && std::find(own.begin(), own.end(), fd.socket->local) != own.end();
  }}};
}

// What the server holds once the shutdown of `n` sessions is stuck. Broken:
// their TCP sockets, in `state`, local = the server, peer = the client
// (`peer` for one client; after an RST the kernel forgets the peer: "").
// Fixed: nothing.
inline std::vector<closecheck::Expected> stuck(const Server& server, TcpState state, std::size_t n = 1,
                                               const std::string& peer = "127.0.0.1:*") {
  if (!broken) return {};
  return {{n, closecheck::tcp(state).local(server.address()).peer(state == TcpState::close ? "" : peer)
                  .opened_in(fixtures::variant.opened_in)}};
}

// How long a test waits for a shutdown that the fixed variant ends at its
// deadline and the broken one never ends.
inline bool shutdowns_end(const Server& server, std::size_t n, std::chrono::milliseconds within) {
  return server.wait_for([n](const Stats& s) { return s.shutdowns_done.size() >= n; }, within);
}

// Runs `close`, the peers' FIN or RST however it comes, while `pause()`'s
// guard holds the server's thread parked, and returns once none of the
// server's sockets (local = `server`; with `peers`, only those towards them)
// is ESTABLISHED: the close reaches a busy server, which takes its events as
// one edge. The kernel wakes a socket twice for a FIN (tcp_fin's state
// change, then data ready; for an RST the state change and the error report).
// An epoll_wait that runs between the two reports a second edge: the
// shutdown's read tries again, sees the EOF, and the shutdown ends after all
// (measured: one FIN in 7 gives a thread spinning in epoll_wait two edges;
// under ASan, FiftyPeersPileUpInCloseWait lost one of its 50 sessions so in 2
// of about 300 runs).
template <class Pause>
void close_reaches_a_busy_server(Pause pause, const std::string& server, const std::function<void()>& close,
                                 const std::vector<std::string>& peers = {}) {
  auto paused = pause();
  close();
  auto established = [&](const closecheck::DiagSocket& s) {
    return s.local == server && (peers.empty() || std::find(peers.begin(), peers.end(), s.peer) != peers.end());
  };
  auto gone = closecheck::eventually([&] {
    auto all = closecheck::sweep(closecheck::state_bit(TcpState::established));
    return std::none_of(all.begin(), all.end(), established);
  }, {.settle = std::chrono::seconds(10)});
  if (!gone) throw std::runtime_error("the peers' close did not reach the server's sockets in 10 s");
}
inline void close_reaches_a_busy_server(Server& server, const std::function<void()>& close) {
  close_reaches_a_busy_server([&] { return server.pause(); }, server.address(), close);
}

// The canonical scenario (Icinga 2's pile-up): the server ends the session;
// the peer reads the close_notify and closes its TCP without sending one
// back. Returns the peer's address.
inline std::string peer_closes_without_close_notify(Server& server, std::uint16_t port = 0) {
  Peer peer(port ? port : server.port());  // port: a proxy in front of the server
  server.disconnect_all();
  fixtures::corpus::mark("server sends close_notify");
  if (!peer.close_notify_arrived() || !peer.read_close_notify())
    throw std::runtime_error("no close_notify from the server");
  auto address = peer.address();
  close_reaches_a_busy_server(server, [&] {
    peer.close_tcp();
    fixtures::corpus::mark("peer's FIN, no close_notify");
  });  // FIN: the server's socket is in CLOSE_WAIT
  if (!broken && !shutdowns_end(server, 1, fixtures::bound(std::chrono::seconds(10))))
    throw std::runtime_error("the fixed server's shutdown did not end");
  return address;
}

}  // namespace asio_ssl_shutdown_hang
