#include "fixtures/corpus.hpp"
#include "scenario.hpp"

int main(int argc, char** argv) {
  using namespace asio_ssl_shutdown_hang;
  return fixtures::corpus::main(argc, argv, [] {
    Server server;
    auto verdict = closecheck::expect_leaks(stuck(server, TcpState::close_wait),
                                            [&] { peer_closes_without_close_notify(server); });
    fixtures::corpus::pause_if_asked();
    return fixtures::corpus::Outcome(verdict, "", fixtures::corpus::Failure::hang);
  });
}
