// A wss:// echo server on Beast (the same Boost as the variant), on 127.0.0.1,
// port 0, on its own thread, with the test CA's localhost certificate. It is
// the peer: how it behaves after the close decides what the client's
// leaked socket looks like.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "beast.hpp"

namespace beast_ws_ssl_teardown {

class Server {
 public:
  enum class Behaviour {
    // Echoes; the text "bye" makes it close first. A session ends when the
    // WebSocket is closed and its stream is destroyed (closing the socket),
    // as in Beast's examples.
    echo,
    // Echoes, but keeps each session's stream after the close until the
    // server stops (a registry of connections): the server side relies on
    // Beast's teardown alone.
    keep_closed,
    // Upgrades, then never reads again: the client's close frame is never answered.
    never_answers_close,
    // Not TLS: writes a plain-text line and closes.
    not_tls,
    // Upgrades, then answers the client's next bytes (its close frame) with
    // bytes that are not a TLS record, under the TLS layer; keeps the connection.
    garbage,
  };

  explicit Server(Behaviour behaviour = Behaviour::echo);
  ~Server();  // stops: closes every connection it still has, joins
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const { return port_; }
  std::size_t accepted() const { return accepted_; }
  std::size_t accept_errors() const { return accept_errors_; }  // EMFILE, say: retried 50 ms later
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // Sessions whose WebSocket has been closed (close handshake done, teardown run).
  int closed_sessions() const { return closed_; }

  class Session;

 private:
  void do_accept();

  Behaviour behaviour_;
  asio::io_context io_;
  ssl::context tls_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;  // the accept's back-off after an error
  std::uint16_t port_;
  std::vector<std::weak_ptr<Session>> sessions_;  // the server's thread only
  std::vector<std::shared_ptr<Session>> kept_;    // keep_closed: closed sessions held until stop
  std::atomic<int> closed_{0};
  std::atomic<std::size_t> accepted_{0}, accept_errors_{0};
  std::thread thread_;
};

}  // namespace beast_ws_ssl_teardown
