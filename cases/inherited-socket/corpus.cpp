#include <optional>

#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace inherited_socket;
  return fixtures::corpus::main(argc, argv, []() -> fixtures::corpus::Outcome {
    Helpers helpers;
    std::optional<Server> server(std::in_place, helpers);
    auto address = server->address();
    auto s = spawn_helper(*server);
    server.reset();
    // In this process nothing is left (the per-process check would pass);
    // the helper holds the connection and the port.
    auto verdict = expect_held_by(s.helper, expected_in_helper(address, s.client_address, true));
    auto note = describe(held_by(s.helper));
    fixtures::corpus::pause_if_asked();
    if (!helpers.release()) throw std::runtime_error("the helper did not exit");
    if (fixtures::read_to_eof(s.client.get(), std::chrono::seconds(10)) != "")
      throw std::runtime_error("no EOF after the helper exited");
    return {verdict, note.empty() ? "" : "held by " + note};
  });
}
