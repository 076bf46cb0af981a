#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace stopped_context;
  return fixtures::corpus::main(argc, argv, [] {
    Server server;
    auto verdict = closecheck::expect_leaks(expected_after_stop(1, server),
                                            [&] { close_after_stop(server, 1); });
    fixtures::corpus::pause_if_asked();
    return verdict;  // ~Server destroys the io_context, and with it what it held
  });
}
