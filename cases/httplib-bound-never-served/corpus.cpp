#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace httplib_bound_never_served;
  return fixtures::corpus::main(argc, argv, [] {
    std::vector<int> ports;
    return closecheck::expect_leaks(expected_after(1, ports),
                                    [&] {
                                      fixtures::corpus::mark("server binds, finds no root");
                                      ports.push_back(failed_start());
                                      fixtures::corpus::mark("stop(); server destroyed");
                                      fixtures::corpus::pause_if_asked();
                                    },
                                    closecheck::Reclaim::close);  // nothing owns it any more
  });
}
