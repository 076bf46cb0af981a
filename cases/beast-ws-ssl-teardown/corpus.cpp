#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace beast_ws_ssl_teardown;
  return fixtures::corpus::main(argc, argv, [] {
    Server server;
    Client client;
    auto verdict = closecheck::expect_leaks(expected_after_close(1, server.address()),
                                            [&] {
                                              echo_then_close(client, server.port());
                                              fixtures::corpus::mark("client's close() returns");
                                            });
    fixtures::corpus::pause_if_asked();
    return verdict;
  });
}
