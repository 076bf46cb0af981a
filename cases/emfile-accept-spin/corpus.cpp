// ci/corpus: one client connects while the server's table is full. The leak
// here is not a descriptor but a core: the line reports the failed accepts and
// the CPU time of the window, and the verdict checks them against the variant.
#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace emfile_accept_spin;
  return fixtures::corpus::main(argc, argv, [] {
    fixtures::corpus::follow_children();  // the server's child: its CPU time over time
    FullServer server;
    Observed seen;
    auto verdict = closecheck::expect_no_leaks([&] {
      fixtures::UniqueFd client;
      fixtures::corpus::mark("client connects to a full table");
      seen = one_waiting_client(server, client);
      fixtures::corpus::mark("window ends");
      fixtures::corpus::pause_if_asked();
    });
    auto why = unexpected(seen);
    if (server.finish() != 0) why += "the server's child did not stop cleanly\n";
    if (!why.empty()) verdict = {false, why + verdict.message, verdict.leaked};
    return fixtures::corpus::Outcome(verdict, describe(seen), fixtures::corpus::Failure::spin);
  });
}
