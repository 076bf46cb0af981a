// A TLS line server on Boost.Asio (ssl::stream over tcp::socket): for each
// line a client sends it answers "ok: <line>". It listens on 127.0.0.1
// (port 0) with the test CA's localhost certificate and runs on its own thread
// (fixtures::LoopbackServer).
//
// Each session keeps one read pending all the time, as a server does that
// must notice messages and disconnects (Icinga 2's JSON-RPC connections do).
// disconnect_all() ends every session the way the server ends one itself (a
// reload, a dead client): a TLS shutdown, started while that read is pending,
// then close; a client's line "quit" makes the server end that one session
// the same way, after its answer. broken.cpp and fixed.cpp define the
// shutdown; the rest is shared.
#pragma once

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fixtures/asio/loopback_server.hpp"
#include "fixtures/park.hpp"
#include "fixtures/watched.hpp"

namespace asio_ssl_shutdown_hang {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using asio::ip::tcp;
using boost::system::error_code;

// What the sessions did, for the tests.
struct Stats {
  std::size_t handshakes = 0, handshake_failures = 0, shutdowns_started = 0;
  std::size_t replies = 0;                 // answers written (to the kernel: not necessarily delivered)
  std::vector<error_code> reads_ended;     // how each session's read ended
  std::vector<error_code> shutdowns_done;  // how each async_shutdown completed
};

class Server;

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, Server& server);
  void start();
  void disconnect();  // on the server's thread: TLS shutdown, then close
  void close();       // the hard close: the TCP socket, now

 private:
  void do_read();
  void do_write();
  void shut_down();  // broken.cpp / fixed.cpp
  void shutdown_done(const error_code& ec);

  Server& server_;
  ssl::stream<tcp::socket> stream_;
  asio::steady_timer deadline_;  // the shutdown's deadline (fixed.cpp)
  std::string request_, reply_;
  bool stopping_ = false;
  bool busy_ = true;  // in the handshake or a write
};

class Server : public fixtures::LoopbackServer {
 public:
  struct Options {
    // How long the fixed session waits for the peer's close_notify.
    std::chrono::milliseconds shutdown_timeout{250};
  };
  Server() : Server(Options{}) {}
  explicit Server(Options options);
  ~Server();  // closes every session hard, then joins the thread

  const Options& options() const { return options_; }
  ssl::context& tls() { return tls_; }

  // Starts the TLS shutdown of every open session (returns at once).
  void disconnect_all();
  // Sessions still alive (their socket may already be closed).
  std::size_t sessions() const;
  // Parks the server's thread until the guard goes (fixtures::park).
  [[nodiscard]] std::shared_ptr<void> pause() { return fixtures::park(io_); }

  Stats stats() const { return stats_.get(); }
  // Waits until condition(stats) holds; false at the deadline.
  bool wait_for(const std::function<bool(const Stats&)>& condition,
                std::chrono::milliseconds deadline = std::chrono::seconds(10)) const {
    return stats_.wait_for(condition, deadline);
  }
  void record(const std::function<void(Stats&)>& change) { stats_.change(change); }

 private:
  void start_session(tcp::socket socket);
  std::vector<std::shared_ptr<session>> live() const;

  Options options_;
  ssl::context tls_;
  fixtures::Watched<Stats> stats_;
  mutable std::mutex mutex_;  // sessions_
  std::vector<std::weak_ptr<session>> sessions_;
};

}  // namespace asio_ssl_shutdown_hang
