#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace websocket_eof_check;
  return fixtures::corpus::main(argc, argv, [] {
    fixtures::ws::Server server;
    Client client;
    auto verdict = closecheck::expect_leaks(
        expected_after_release(server.address()), [&] { drop_without_closing(client, server.port()); },
        closecheck::Reclaim::keep, client_side(server));
    auto logged = client.log.lines();
    if (logged != (broken ? std::vector{swallowed_error} : std::vector<std::string>{})) {
      verdict.ok = false;
      verdict.message += "unexpected log: " + std::to_string(logged.size()) + " lines\n";
    }
    return fixtures::corpus::Outcome(verdict, broken ? "logged once: " + swallowed_error : "");
  });
}
