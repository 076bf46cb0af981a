// The upstream trigger: a client after AUTH TLS, idle; the server stops.
#include <optional>
#include <string>

#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace ftp_tls_close;
  return fixtures::corpus::main(argc, argv, [] {
    Site site;
    ftp_tls::Server server({.root = site.root()});
    ClientAddresses addresses;
    std::optional<ftp_tls::Client> client;
    auto verdict = closecheck::expect_leaks(
        left_open(server, addresses),
        [&] {
          client.emplace(idle_tls_client(server));
          addresses.control = client->local_address();
          server.stop();
          fixtures::corpus::mark("server stops");
          fixtures::corpus::pause_if_asked();
        },
        closecheck::Reclaim::close, addresses.ignoring_own());
    // Where Python would print a ResourceWarning (on stderr, between the
    // table's lines), the server records it: said on the line instead.
    std::string note;
    if (auto s = server.stats(); s.dropped_open)
      note = "close_all() dropped " + std::to_string(s.dropped_open) + " open, " +
             std::to_string(s.dropped_awaiting_close_notify) + " awaiting the client's close_notify";
    return fixtures::corpus::Outcome(std::move(verdict), note);
  });
}
