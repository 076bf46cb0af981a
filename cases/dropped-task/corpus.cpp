#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace dropped_task;
  return fixtures::corpus::main(argc, argv, []() -> fixtures::corpus::Outcome {
    Server server;
    Target target;
    ForwardRun run;
    auto verdict = closecheck::expect_leaks(expected_after_forward(server, target),
                                            [&] { run = forward_once(server, target); },
                                            closecheck::Reclaim::keep);  // the server still owns them
    auto stats = server.stats().loop;
    bool as_expected = broken ? !run.client_saw && !run.target_saw && stats.destroyed_pending == 1
                              : run.client_saw == forward_transcript && run.target_saw == "";
    if (!as_expected) {
      verdict.ok = false;
      verdict.message += "the peers did not see what this variant must produce\n";
    }
    std::string note = broken ? "no reply, forward never closed: task '" + stats.last_destroyed +
                                    "' destroyed pending"
                              : std::to_string(stats.finished) + " task finished, forward closed, replies sent";
    return {verdict, note};
  });
}
