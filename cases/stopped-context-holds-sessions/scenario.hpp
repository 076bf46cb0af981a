// The canonical scenario, shared by the tests and ci/corpus: clients are
// served, the server stops (and stays alive, as it would to restart later),
// then the clients close.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "closecheck/closecheck.hpp"
#include "fixtures/corpus.hpp"  // mark(): the report's time axis
#include "fixtures/net.hpp"
#include "fixtures/variant.hpp"
#include "server.hpp"

namespace stopped_context {

inline constexpr const bool& broken = fixtures::variant.broken;

struct Client {
  fixtures::UniqueFd fd;
  std::string address;  // as ss shows it
};

// A client that sent one request and read its answer, still connected: its
// session's next read is pending.
inline Client served_client(const Server& server, const std::string& request = "hello\n") {
  Client c{fixtures::connect_tcp("127.0.0.1", server.endpoint().port()), {}};
  c.address = closecheck::inspect(c.fd.get())->socket->local;
  fixtures::send_all(c.fd.get(), request);
  auto answer = fixtures::read_until(c.fd.get(), '\n', std::chrono::seconds(10));
  if (answer != "ok: " + request) throw std::runtime_error("no answer from the server");
  return c;
}

// n clients are served, the server stops, then each client closes (FIN).
// Returns the clients' addresses.
inline std::vector<std::string> close_after_stop(Server& server, std::size_t n) {
  std::vector<Client> clients;
  for (std::size_t i = 0; i < n; ++i)
    clients.push_back(served_client(server, "request " + std::to_string(i) + "\n"));
  fixtures::corpus::mark("clients served");
  server.stop();
  fixtures::corpus::mark("server.stop()");
  std::vector<std::string> addresses;
  for (auto& c : clients) addresses.push_back(c.address);
  clients.clear();  // the clients close here
  fixtures::corpus::mark("clients close (FIN)");
  return addresses;
}

// The server's local address, as ss shows it.
inline std::string here(const Server& server) {
  return "127.0.0.1:" + std::to_string(server.endpoint().port());
}

// What close_after_stop(n) leaves: broken, one server-side socket per client
// in CLOSE_WAIT, still owned by a pending handler (so not reclaimed); fixed,
// nothing.
inline std::vector<closecheck::Expected> expected_after_stop(std::size_t clients,
                                                             const Server& server) {
  if (!broken) return {};
  return {{clients, closecheck::tcp(closecheck::TcpState::close_wait).local(here(server)).peer("127.0.0.1:*")
                        .opened_in(fixtures::variant.opened_in)}};
}

}  // namespace stopped_context
