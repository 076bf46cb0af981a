#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace close_wait_server;
  return fixtures::corpus::main(argc, argv, [] {
    Server server;
    auto verdict = closecheck::expect_leaks(expected_after(1, server), [&] {
                                              fixtures::corpus::mark("client connects");
                                              one_client(server);
                                              fixtures::corpus::mark("client closes (FIN)");
                                            });
    fixtures::corpus::pause_if_asked();
    return verdict;
  });
}
