#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace httplib_bound_never_served;
  return fixtures::corpus::main(argc, argv, [] {
    std::vector<int> ports;
    return closecheck::expect_leaks(expected_after(1, ports),
                                    [&] {
                                      ports.push_back(failed_start());
                                      fixtures::corpus::pause_if_asked();
                                    },
                                    closecheck::Reclaim::close);  // nothing owns it any more
  });
}
