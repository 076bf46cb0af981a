#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace close_wait_server;
  return fixtures::corpus::main(argc, argv, [] {
    Server server;
    return closecheck::expect_leaks(expected_after(1, server), [&] { one_client(server); },
                                    closecheck::Reclaim::keep);
  });
}
