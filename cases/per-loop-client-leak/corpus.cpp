#include "fixtures/corpus.hpp"
#include "fixtures/http/server.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace per_loop_client_leak;
  return fixtures::corpus::main(argc, argv, [] {
    constexpr std::size_t n = 10;
    fixtures::http::Server server;
    auto verdict = closecheck::expect_leaks(
        expected_after(n),
        [&] {
          fixtures::corpus::mark("10 iterations start");
          iterations(n, {.port = server.port()}, server.body());
          fixtures::corpus::mark("10 iterations done");
        });  // the registry owns them...
    auto note = growth_note(verdict.leaked, n);
    fixtures::corpus::pause_if_asked();
    clear_registry();                // ...until it is cleared
    return fixtures::corpus::Outcome(std::move(verdict), note);
  });
}
