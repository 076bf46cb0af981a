// ftp-tls-close under injected faults (label fault): clients that never send
// close_notify, cut the TLS handshake, reset, half-close, trickle an overlong
// command, cut a data connection, or stop reading; most through
// fixtures::fault::Proxy. Fixed: nothing is left open, every wait is bounded.
// Broken: wherever the server stops while a TLS connection still waits for
// the client, its orphaned socket is asserted (count, state, address) and
// reclaimed; a fault that ends the connection first is clean in both.
// The fault matrix (fixtures/fault/matrix.hpp) runs the faults through the
// proxy, each row a client of its own (FTP over TLS); the trigger without a
// proxy, the handshake cut both ways in one test and the data connection's
// reset stay TESTs.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <future>
#include <optional>

#include "closecheck/gtest.hpp"
#include "fixtures/fault/matrix.hpp"
#include "fixtures/net.hpp"
#include "scenario.hpp"

using namespace ftp_tls_close;
using namespace fixtures::fault;
using namespace std::chrono_literals;
using closecheck::Expected;
using closecheck::Reclaim;
using ftp_tls::Client;
using ftp_tls::Server;

namespace {

constexpr auto client_timeout = 3s;
const std::string greeting = "220 closecheck FTP server ready.\r\n";
const std::string auth_reply = "234 AUTH TLS successful.\r\n";

Client client_of(std::uint16_t port) { return Client(port, CLOSECHECK_TEST_CA, client_timeout); }

// Broken: the server's side of one control connection that close_all()
// orphaned, in `state`; fixed: nothing.
std::vector<Expected> orphaned(const Server& server, TcpState state) {
  if (!broken) return {};
  return {{1, closecheck::tcp(state).local(server.address())}};
}

// The client's own sockets (and, through a proxy, the proxy's) are not the server's.
closecheck::Options server_side_only(const Server& server) {
  return {.ignore = {[address = server.address()](const closecheck::Fd& fd) {
    return fd.socket && fd.socket->local != address;
  }}};
}

// Runs stop() on another thread with a deadline: a hang fails the test with
// this message at once (ctest's timeout then ends the stuck process).
void stop_within(Server& server, std::chrono::seconds deadline = 20s) {
  auto done = std::async(std::launch::async, [&] { server.stop(); });
  ASSERT_EQ(done.wait_for(deadline), std::future_status::ready) << "Server::stop() hung";
}

// The server on its site, and a client that outlives the check (the trigger's).
struct Host {
  Site site;
  Server server{{.root = site.root()}};
  std::optional<Client> client;
};

const Scenario<Host> scenario{
    .suite = "FtpTlsCloseFault",
    .port = [](const Host& h) { return h.server.port(); },
    .options = [](const Host& h) { return server_side_only(h.server); },
};

// The end of a row in which every connection has ended by itself.
const auto every_connection_ended = [](Host& h, Proxy& proxy, Seen&) {
  EXPECT_TRUE(h.server.wait_idle());
  EXPECT_TRUE(proxy.wait_idle());
  stop_within(h.server);
};
// The trigger's rows: the client goes after the check, the proxy still up.
const auto client_goes = [](Host& h, Proxy&, Seen&) { h.client.reset(); };

const bool registered = register_matrix(scenario, {
    // The TLS handshake cut in the server's ServerHello, after 50 bytes of it:
    // the client gets an error in bounded time; nothing is left in either variant.
    {.name = "HandshakeCutInTheServersHello", .fault = Fault::custom,
     .expect = {.settle = every_connection_ended},
     .toxics = Faults{.downstream = {.limit_data = greeting.size() + auth_reply.size() + 50, .limit_cut = Cut::reset}},
     .client = [](Host&, Proxy& proxy, Seen&) {
       auto client = client_of(proxy.port());
       EXPECT_THROW(client.auth_tls(), ftp_tls::FtpError);
       EXPECT_TRUE(proxy.wait_fired(What::limit_data));
       client.close();
     }},
    // An RST in the middle of a TLS session: the server's TLS shutdown meets the
    // reset and closes, in both variants (the error path).
    {.name = "ResetAfterLogin", .fault = Fault::custom,
     .expect = {.settle = every_connection_ended},
     .client = [](Host&, Proxy& proxy, Seen&) {
       auto client = client_of(proxy.port());
       client.auth_tls();
       client.login();
       proxy.set({.upstream = {.reset_peer = 0ms}, .downstream = {.reset_peer = 0ms}});
       EXPECT_TRUE(proxy.wait_fired(What::reset_peer));
       EXPECT_THROW(client.command("NOOP"), ftp_tls::FtpError);
       client.close();
     }},
    // The client half-closes (FIN, no close_notify) and keeps its socket open:
    // the server's TLS shutdown reads EOF and closes in both variants; the client
    // then sees the server's close_notify and its FIN.
    {.name = "ClientHalfClosesWithoutCloseNotify", .fault = Fault::custom,
     .expect = {.ending = "eof", .settle = every_connection_ended},
     .client = [](Host& h, Proxy& proxy, Seen& seen) {
       auto client = client_of(proxy.port());
       client.auth_tls();
       client.login();
       ASSERT_EQ(::shutdown(client.control().fd(), SHUT_WR), 0);
       EXPECT_TRUE(proxy.wait_fired(What::eof));
       EXPECT_TRUE(h.server.wait_idle());
       seen.ending = ending(client.control().fd());
       client.close();
     }},
    // A 64 KiB command line in 512-byte slices, 1 ms apart, over TLS: 500, and
    // the session goes on.
    {.name = "OverlongCommandTrickledIn", .fault = Fault::custom,
     .expect = {.settle = every_connection_ended},
     .client = [](Host&, Proxy& proxy, Seen&) {
       auto client = client_of(proxy.port());
       client.auth_tls();
       proxy.set({.upstream = {.slice_bytes = 512, .slice_delay = 1ms}});
       EXPECT_EQ(client.command("USER " + std::string(64 * 1024, 'a')).text, "500 Line too long.\r\n");
       EXPECT_EQ(client.command("NOOP").code, 200);
       client.quit();
     }},
    // A client that stops reading its control connection (the proxy stalls it,
    // small buffers: a zero window) while it pipelines 20000 NOOPs and a PASV;
    // then the server stops. Fixed: closed. Broken: the TLS shutdown cannot even
    // send its close_notify (want-write) or waits for the client's: orphaned,
    // ESTABLISHED (reclaimed).
    {.name = "SlowReaderWhenTheServerStops", .fault = Fault::custom,
     .expect = {.leaks = [](const Host& h) { return orphaned(h.server, TcpState::established); },
                .after = client_goes},
     .proxy = Proxy::Options{.rcvbuf = 4096, .sndbuf = 4096},
     .client = [](Host& h, Proxy& proxy, Seen&) {
       constexpr int commands = 20000;
       h.client.emplace(client_of(proxy.port()));
       h.client->auth_tls();
       h.client->login();
       proxy.set({.downstream = {.stall = true}});
       std::string noops;
       for (int i = 0; i < commands; ++i) noops += "NOOP\r\n";
       h.client->send_raw(noops + "PASV\r\n");
       // Its passive listener shows the server has read every command: unread
       // records would make the TLS shutdown fail and close even when broken.
       ASSERT_TRUE(h.server.wait_for([](const ftp_tls::ServerStats& st) { return st.handlers == 3; }));
       stop_within(h.server);
     },
     .reclaim = Reclaim::close},
    // The upstream trigger with 20 ms of latency each way. The client's last
    // handshake flight is then still on its way for 20 ms when auth_tls()
    // returns, and a TLS shutdown during the handshake fails and closes (no leak
    // even when broken): idle_tls_client() waits for the server's side of it.
    {.name = "IdleTlsClientBehindLatency", .fault = Fault::custom,
     .expect = {.leaks = [](const Host& h) { return orphaned(h.server, TcpState::established); },
                .after = client_goes},
     .toxics = Faults{.upstream = {.latency = 20ms}, .downstream = {.latency = 20ms}},
     .client = [](Host& h, Proxy& proxy, Seen&) {
       h.client.emplace(idle_tls_client(h.server, proxy.port()));
       stop_within(h.server);
     },
     .reclaim = Reclaim::close},
});

}  // namespace

// ftplib's behaviour at its worst: QUIT, then the client neither sends
// close_notify nor closes. The server's own TLS shutdown waits for it; then
// the server stops. Fixed: close() closes. Broken: close() is the TLS
// shutdown again, want-read, and the map is cleared: orphaned, ESTABLISHED.
TEST(FtpTlsCloseFault, ClientNeverSendsCloseNotifyAfterQuit) {
  Site site;
  Server server({.root = site.root()});
  std::optional<Client> client;
  EXPECT_TRUE(closecheck::Leaks(orphaned(server, TcpState::established), [&] {
    client.emplace(client_of(server.port()));
    client->auth_tls();
    client->login();
    EXPECT_EQ(client->command("QUIT").code, 221);  // and nothing more from this client
    stop_within(server);
  }, Reclaim::close, server_side_only(server)));
  client->close();
}

// The TLS handshake cut by the network after the client's first 100 bytes
// (half a ClientHello), as a FIN or as an RST: the client gets an error in
// bounded time, the server closes its side; nothing is left in either variant.
TEST(FtpTlsCloseFault, HandshakeCutAfterHalfAClientHello) {
  Site site;
  Server server({.root = site.root()});
  for (auto cut : {Cut::close, Cut::reset}) {
    Proxy proxy(server.port(), {.upstream = {.limit_data = std::string("AUTH TLS\r\n").size() + 100,
                                             .limit_cut = cut}});
    auto client = client_of(proxy.port());
    EXPECT_THROW(client.auth_tls(), ftp_tls::FtpError) << to_string(cut);
    EXPECT_TRUE(proxy.wait_fired(What::limit_data));
    client.close();
    EXPECT_TRUE(server.wait_idle()) << to_string(cut);
    EXPECT_TRUE(proxy.wait_idle());
  }
  stop_within(server);
}

// A PROT P download whose data connection the client resets in the middle:
// 426 on the control connection, the data socket closed, the session goes on.
TEST(FtpTlsCloseFault, DataConnectionResetMidTransfer) {
  Site site;
  Server server({.root = site.root()});
  auto client = client_of(server.port());
  client.auth_tls();
  client.login();
  client.prot_p();
  {
    auto data = client.begin_transfer("RETR huge.bin");
    ASSERT_FALSE(data.read_some().empty());
    fixtures::set_linger_zero(data.fd());
  }  // closed: RST
  EXPECT_EQ(client.read_reply().code, 426);
  EXPECT_EQ(client.retr("hello.txt"), "hello\n");
  client.quit();
  EXPECT_TRUE(server.wait_idle());
  EXPECT_EQ(server.stats().transfers_done, 1u);
  stop_within(server);
}
