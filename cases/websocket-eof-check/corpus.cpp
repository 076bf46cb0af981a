#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace websocket_eof_check;
  return fixtures::corpus::main(argc, argv, [] {
    fixtures::ws::Server server;
    Client client;
    Open open;  // the response dropped (del ws._response); the WebSocket stays
    auto verdict = closecheck::expect_leaks(
        expected_after_release(server.address()),
        [&] {
          open = drop_response(client, server.port());
          fixtures::corpus::mark("response dropped, WebSocket not closed");
        },
        closecheck::Reclaim::keep, client_side(server));
    std::string note;
    if (client.log.lines() != (broken ? std::vector{swallowed_error} : std::vector<std::string>{})) {
      verdict.ok = false;
      verdict.message += "unexpected log: " + std::to_string(client.log.lines().size()) + " lines\n";
    }
    fixtures::corpus::pause_if_asked();  // CLOSECHECK_PAUSE=1: the untracked socket, ESTABLISHED
    if (broken && verdict.ok && verdict.leaked.size() == 1) {
      const auto& leaked = verdict.leaked[0];
      auto after_connector = after_connector_closes(client, leaked);
      server.close_all();
      bool closed = gone(leaked);
      auto server_end = server_end_after_both_closed(server.address(), open.local);
      note = "logged once; after the connector closed: " +
             (after_connector ? std::string(closecheck::to_string(after_connector->socket->state))
                              : std::string("gone")) +
             "; after the server closed: " + (closed ? "closed by the client" : "still open") +
             ", server end " +
             (server_end ? std::string(closecheck::to_string(server_end->state)) : std::string("gone"));
      if (!after_connector || !closed) verdict.ok = false;
    }
    return fixtures::corpus::Outcome(verdict, note);
  });
}
