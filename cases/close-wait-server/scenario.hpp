// The canonical scenario, shared by the tests and ci/corpus: one client
// connects, sends a request, reads the answer and closes first.
#pragma once

#include <string>

#include "closecheck/closecheck.hpp"
#include "fixtures/corpus.hpp"  // mark(): the report's time axis
#include "fixtures/net.hpp"
#include "fixtures/variant.hpp"
#include "server.hpp"

namespace close_wait_server {

inline constexpr const bool& broken = fixtures::variant.broken;

// One request and its answer, then the client closes (sends FIN) first.
// Returns the client's address as ss shows it.
inline std::string one_client(const Server& server, const std::string& request = "hello\n") {
  auto client = fixtures::connect_tcp("127.0.0.1", server.endpoint().port());
  auto local = closecheck::inspect(client.get())->socket->local;
  fixtures::send_all(client.get(), request);
  auto answer = fixtures::read_until(client.get(), '\n', std::chrono::seconds(10));
  if (answer != "ok: " + request) throw std::runtime_error("no answer from the server");
  fixtures::corpus::mark("server answered");
  return local;  // client closes here
}

// What the variant leaves behind after n such clients: broken, one
// server-side socket per client in CLOSE_WAIT with the client as its peer
// (still owned by the server, so not reclaimed); fixed, nothing.
inline std::vector<closecheck::Expected> expected_after(std::size_t clients, const Server& server) {
  if (!broken) return {};
  auto here = "127.0.0.1:" + std::to_string(server.endpoint().port());
  return {{clients, closecheck::tcp(closecheck::TcpState::close_wait).local(here).peer("127.0.0.1:*")
                        .opened_in(fixtures::variant.opened_in)}};
}

}  // namespace close_wait_server
