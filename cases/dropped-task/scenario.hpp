// The canonical scenario, shared by the tests and ci/corpus: a client asks the
// server to forward to a target, half-closes, and waits for the replies and
// the server's close; the target sends a line and closes.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <optional>
#include <stdexcept>
#include <string>

#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"
#include "fixtures/corpus.hpp"  // mark(): the report's time axis
#include "connection.hpp"
#include "fixtures/net.hpp"
#include "fixtures/variant.hpp"

namespace dropped_task {

inline constexpr const bool& broken = fixtures::variant.broken;
using namespace std::chrono_literals;

// How long a peer waits for work that a broken server drops: long enough
// that a fixed server would have answered. A fixed server is given 10 s.
inline constexpr auto missing_wait = 300ms;
inline const auto answer_wait = fixtures::bound(10s);

// A listening socket on 127.0.0.1, port 0: the forward's target.
class Target {
 public:
  Target() : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!fd_ || ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(fd_.get(), 8) != 0)
      throw std::runtime_error("cannot listen on 127.0.0.1");
  }
  std::uint16_t port() const { return fixtures::local_port(fd_.get()); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port()); }
  fixtures::UniqueFd accept(std::chrono::milliseconds deadline = answer_wait) const {
    if (!fixtures::wait_readable(fd_.get(), deadline)) throw std::runtime_error("the server never connected to the target");
    return fixtures::UniqueFd(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }

 private:
  fixtures::UniqueFd fd_;
};

// What a peer saw: everything until the other side closed, or nothing at all
// (nullopt) if neither a byte nor EOF came within `wait`.
inline std::optional<std::string> transcript(int fd, std::chrono::milliseconds wait) {
  if (!fixtures::wait_readable(fd, wait)) return std::nullopt;
  return fixtures::read_to_eof(fd, answer_wait);
}
inline std::chrono::milliseconds wait_for_answer() { return broken ? missing_wait : answer_wait; }

inline fixtures::UniqueFd connect(const Server& server) {
  return fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
}

// Waits (bounded) until the server has started `tasks` tasks, none of them
// exists any more (finished or destroyed), and `connections` are open; then
// returns its stats, for exact assertions.
inline Server::Stats settled(Server& server, std::size_t tasks, std::size_t connections) {
  Server::Stats stats;
  closecheck::eventually([&] {
    stats = server.stats();
    return stats.loop.started == tasks && stats.loop.live == 0 && stats.connections == connections;
  }, {.settle = answer_wait});
  return stats;
}

struct ForwardRun {
  std::optional<std::string> client_saw;  // the client's transcript (nullopt: nothing, no EOF)
  std::optional<std::string> target_saw;  // after the target's FIN: "" if the forward closed too
};

// FORWARD to the target; the target sends "hello" and half-closes; the client
// half-closes after its request. Both peers then wait for the server.
inline ForwardRun forward_once(const Server& server, const Target& target) {
  auto client = connect(server);
  fixtures::send_all(client.get(), "FORWARD " + std::to_string(target.port()) + "\n");
  ::shutdown(client.get(), SHUT_WR);
  auto accepted = target.accept();  // the connect is not a task: it happens in both variants
  fixtures::corpus::mark("forward connected");
  fixtures::send_all(accepted.get(), "hello\n");
  ::shutdown(accepted.get(), SHUT_WR);
  ForwardRun run;
  run.client_saw = transcript(client.get(), wait_for_answer());
  run.target_saw = transcript(accepted.get(), wait_for_answer());
  return run;  // both peers close here
}

inline const std::string forward_transcript = "FORWARD 1 open\nDATA 1 hello\nFORWARD 1 closed\n";

// Broken: the task that would have closed the forward and sent the final
// reply was destroyed, so the forward's socket sits in CLOSE_WAIT (the
// target closed) and so does the client's connection (the client closed,
// the server waits for a reply that will never come). The server still owns
// both (not reclaimed). Fixed: nothing.
inline std::vector<closecheck::Expected> expected_after_forward(const Server& server, const Target& target) {
  using closecheck::TcpState;
  if (!broken) return {};
  return {{1, closecheck::tcp(TcpState::close_wait).local(server.address()).peer("127.0.0.1:*")
                  .opened_in(fixtures::variant.opened_in)},
          {1, closecheck::tcp(TcpState::close_wait).local("127.0.0.1:*").peer(target.address())
                  .opened_in(fixtures::variant.opened_in)}};
}

}  // namespace dropped_task
