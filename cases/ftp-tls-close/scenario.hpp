// What the tests and ci/corpus share: a served directory, the upstream
// trigger, and what each variant leaves open.
#pragma once

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "client.hpp"
#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"
#include "fixtures/corpus.hpp"  // mark(): the report's time axis
#include "fixtures/variant.hpp"
#include "server.hpp"

namespace ftp_tls_close {

inline constexpr const bool& broken = fixtures::variant.broken;
using closecheck::TcpState;
namespace fs = std::filesystem;

inline std::string pattern(std::size_t size) {
  std::string s(size, '\0');
  for (std::size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 7919 + i / 4096) % 251);
  return s;
}

// A directory for the server: hello.txt, big.bin (1 MiB), huge.bin (32 MiB:
// more than the socket buffers hold, so a transfer of it is still in flight
// when a client stops reading) and an empty subdirectory. Removed at the end.
class Site {
 public:
  static constexpr std::size_t big_size = 1 << 20, huge_size = 32 << 20;
  Site() {
    static std::atomic<int> n{0};
    root_ = fs::temp_directory_path() /
            ("ftp-tls-close-" + std::to_string(getpid()) + "-" + std::to_string(n++));
    fs::create_directories(root_ / "sub");
    write("hello.txt", "hello\n");
    write("big.bin", pattern(big_size));
    write("huge.bin", pattern(huge_size));
  }
  ~Site() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  Site(const Site&) = delete;
  Site& operator=(const Site&) = delete;

  const fs::path& root() const { return root_; }
  void write(const std::string& name, const std::string& data) const {
    std::ofstream(root_ / name, std::ios::binary) << data;
  }
  std::string read(const std::string& name) const {
    std::ifstream in(root_ / name, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

 private:
  fs::path root_;
};

// The upstream trigger's client: it connects, does AUTH TLS (verifying the
// server against the test CA), and then sits there, reading nothing. Returns
// once the server has finished its side of the handshake too: the client's
// side ends when it sends its Finished, the server's when it has read it, and
// a server stopped in between meets a handshake (which any close ends), not
// the TLS session whose shutdown is the bug. `port`: where the client
// connects, if not to the server itself (a proxy in front of it).
inline ftp_tls::Client idle_tls_client(const ftp_tls::Server& server, std::uint16_t port = 0) {
  const auto secured = server.stats().secured;
  ftp_tls::Client client(port ? port : server.port());
  client.auth_tls();
  if (!server.wait_for([&](const ftp_tls::ServerStats& s) { return s.secured > secured; }))
    throw ftp_tls::FtpError("the server never finished the AUTH TLS handshake");
  fixtures::corpus::mark("AUTH TLS done");
  return client;
}

// The client's side of the connections a test opens inside a checked block,
// filled in as it opens them: the server's sockets have them as peers, and
// the client's own sockets are not the server's leaks.
struct ClientAddresses {
  // "127.0.0.1:40000"; empty when not known (a client in another process):
  // then any 127.0.0.1 port.
  std::string control, data;

  bool own(const closecheck::Fd& fd) const {
    return fd.socket && !fd.socket->local.empty() &&
           (fd.socket->local == control || fd.socket->local == data);
  }
  closecheck::Options ignoring_own() const {
    return {.ignore = {[this](const closecheck::Fd& fd) { return own(fd); }}};
  }
};

// What stopping the server leaves open while the client is still connected.
// Broken: the server's side of the control connection, ESTABLISHED, with the
// client as its peer (and of the data connection, with_data); nobody owns them
// any more. Fixed: nothing.
inline std::vector<closecheck::Expected> left_open(const ftp_tls::Server& server,
                                                   const ClientAddresses& client,
                                                   bool with_data = false) {
  if (!broken) return {};
  auto peer_is = [](const std::string& what, const std::string& address) {
    return closecheck::tcp(TcpState::established).opened_in(fixtures::variant.opened_in).with(
        "peer = the client's " + what, [&address](const closecheck::Fd& fd) {
          if (!fd.socket) return false;
          return address.empty() ? fd.socket->peer.starts_with("127.0.0.1:") : fd.socket->peer == address;
        });
  };
  std::vector<closecheck::Expected> e{{1, peer_is("control socket", client.control).local(server.address())}};
  if (with_data) e.push_back({1, peer_is("data socket", client.data).local("127.0.0.1:*")});
  return e;
}

// Waits until this process holds a TCP socket whose peer is `client` (the
// server's side of that connection) in `state`.
inline bool server_side_reaches(TcpState state, const std::string& client) {
  return closecheck::eventually(
      [&] {
        const auto now = closecheck::Snapshot::take();  // outlives the loop over its fds
        for (const auto& fd : now.fds()) {
          auto info = closecheck::inspect(fd.number);
          if (info && info->socket && info->socket->is_tcp() && info->socket->peer == client &&
              info->socket->state == state)
            return true;
        }
        return false;
      },
      {.settle = std::chrono::seconds(10)});
}

}  // namespace ftp_tls_close
