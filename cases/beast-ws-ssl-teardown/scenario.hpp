// The canonical scenario, shared by the tests and ci/corpus: a client that
// keeps its connection object connects over TLS, echoes one message, calls
// close() (which succeeds) and stays alive.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "client.hpp"
#include "closecheck/closecheck.hpp"
#include "fixtures/corpus.hpp"  // mark(): the report's time axis
#include "fixtures/variant.hpp"
#include "server.hpp"

namespace beast_ws_ssl_teardown {

inline constexpr const bool& broken = fixtures::variant.broken;

// Connects, echoes `text`, closes; throws unless every step succeeds (the
// bug is not an error: close() reports success in both variants).
inline void echo_then_close(Client& client, std::uint16_t port, const std::string& text = "hello") {
  if (auto ec = client.connect(port)) throw std::runtime_error("connect: " + ec.message());
  std::string reply;
  if (auto ec = client.write(text)) throw std::runtime_error("write: " + ec.message());
  if (auto ec = client.read(reply); ec || reply != text) throw std::runtime_error("no echo: " + ec.message());
  fixtures::corpus::mark("echoed; the client calls close()");
  if (auto ec = client.close()) throw std::runtime_error("close: " + ec.message());
}

// What `clients` such clients leave open while they live, when the peer
// closes its end after the TLS shutdown (a Beast server that destroys its
// session, python3-websockets): broken, each client's TCP socket, which the
// peer's FIN has put in CLOSE_WAIT; fixed, nothing.
inline std::vector<closecheck::Expected> expected_after_close(std::size_t clients,
                                                              const std::string& server) {
  if (!broken) return {};
  return {{clients, closecheck::tcp(closecheck::TcpState::close_wait).local("127.0.0.1:*").peer(server)
                        .opened_in(fixtures::variant.opened_in)}};
}

}  // namespace beast_ws_ssl_teardown
