// The upstream trigger: a client after AUTH TLS, idle; the server stops.
#include <optional>

#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace ftp_tls_close;
  return fixtures::corpus::main(argc, argv, [] {
    Site site;
    ftp_tls::Server server({.root = site.root()});
    ClientAddresses addresses;
    std::optional<ftp_tls::Client> client;
    return closecheck::expect_leaks(
        left_open(server, addresses),
        [&] {
          client.emplace(idle_tls_client(server));
          addresses.control = client->local_address();
          server.stop();
          fixtures::corpus::pause_if_asked();
        },
        closecheck::Reclaim::close, addresses.ignoring_own());
  });
}
