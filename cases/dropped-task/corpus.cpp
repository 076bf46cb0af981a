#include <algorithm>

#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace dropped_task;
  return fixtures::corpus::main(argc, argv, []() -> fixtures::corpus::Outcome {
    Server server;
    Target target;
    ForwardRun run;
    auto verdict = closecheck::expect_leaks(expected_after_forward(server, target),
                                            [&] {
                                              fixtures::corpus::mark("FORWARD, then both peers' FIN");
                                              run = forward_once(server, target);
                                              fixtures::corpus::mark("peers stop waiting");
                                            });  // the server still owns them
    fixtures::corpus::pause_if_asked();
    auto stats = settled(server, 1, broken ? 1 : 0).loop;
    bool as_expected = broken ? !run.client_saw && !run.target_saw && stats.destroyed_pending == 1
                              : run.client_saw == forward_transcript && run.target_saw == "";
    if (!as_expected) {
      verdict.ok = false;
      verdict.message += "the peers did not see what this variant must produce\n";
    }
    std::string note = run.client_saw ? std::to_string(std::count(run.client_saw->begin(), run.client_saw->end(), '\n')) +
                                            " replies and the server's close"
                                      : "no reply, no close";
    note += run.target_saw ? ", forward closed" : ", forward never closed";
    if (stats.destroyed_pending)
      note += ": task '" + stats.last_destroyed + "' destroyed pending";
    return {verdict, note};
  });
}
