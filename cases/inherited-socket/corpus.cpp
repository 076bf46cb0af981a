#include <optional>

#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace inherited_socket;
  return fixtures::corpus::main(argc, argv, []() -> fixtures::corpus::Outcome {
    fixtures::corpus::follow_children();  // the helper: what it holds
    Helpers helpers;
    std::optional<Server> server(std::in_place, helpers);
    auto address = server->address();
    auto s = spawn_helper(*server);
    fixtures::corpus::mark("helper started; server closes the connection");
    server.reset();
    fixtures::corpus::mark("server stops");
    // In this process nothing is left (the per-process check would pass);
    // the helper holds the connection and the port.
    auto verdict = expect_held_by(s.helper, expected_in_helper(address, s.client_address, true));
    auto note = describe(held_by(s.helper));
    fixtures::corpus::pause_if_asked();
    if (!helpers.release()) throw std::runtime_error("the helper did not exit");
    if (fixtures::read_to_eof(s.client.get(), std::chrono::seconds(10)) != "")
      throw std::runtime_error("no EOF after the helper exited");
    return {verdict, note.empty() ? "" : "held by " + note, fixtures::corpus::Failure::held};
  });
}
