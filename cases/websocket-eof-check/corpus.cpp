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
    std::string note;
    if (client.log.lines() != (broken ? std::vector{swallowed_error} : std::vector<std::string>{})) {
      verdict.ok = false;
      verdict.message += "unexpected log: " + std::to_string(client.log.lines().size()) + " lines\n";
    }
    if (broken && verdict.ok && verdict.leaked.size() == 1) {
      auto now = after_server_closes(server, verdict.leaked[0]);
      note = "logged once; after the server closed: " +
             (now ? std::string(closecheck::to_string(now->socket->state)) : std::string("gone"));
    }
    fixtures::corpus::pause_if_asked();
    return fixtures::corpus::Outcome(verdict, note);
  });
}
