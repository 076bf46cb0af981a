// A wss:// echo server on Beast (the same Boost as the variant), on 127.0.0.1,
// port 0, on its own thread (fixtures::LoopbackServer), with the test CA's
// localhost certificate. It is
// the peer: how it behaves after the close decides what the client's
// leaked socket looks like.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "beast.hpp"  // first: the variant's Boost (and the overlay)
#include "fixtures/asio/loopback_server.hpp"

namespace beast_ws_ssl_teardown {

class Server : public fixtures::LoopbackServer {
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

  // Sessions whose WebSocket has been closed (close handshake done, teardown run).
  int closed_sessions() const { return closed_; }

  class Session;

 private:
  Behaviour behaviour_;
  ssl::context tls_;
  std::vector<std::weak_ptr<Session>> sessions_;  // the server's thread only
  std::vector<std::shared_ptr<Session>> kept_;    // keep_closed: closed sessions held until stop
  std::atomic<int> closed_{0};
};

}  // namespace beast_ws_ssl_teardown
