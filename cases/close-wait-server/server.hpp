// A line server on Boost.Asio: for each line a client sends, it answers
// "ok: <line>". It listens on 127.0.0.1 (port 0) and runs on its own thread
// (fixtures::LoopbackServer). broken.cpp and fixed.cpp each define the
// session; the rest is shared.
#pragma once

#include <boost/asio.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <set>

#include "fixtures/asio/loopback_server.hpp"

namespace close_wait_server {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

class session_base {
 public:
  virtual ~session_base() = default;
  virtual void start() = 0;
  virtual void stop() = 0;  // closes the socket
};

// Owns the open sessions, as in Asio's HTTP server example.
class connection_manager {
 public:
  void start(std::shared_ptr<session_base> s);
  void stop(const std::shared_ptr<session_base>& s);
  void stop_all();
  std::size_t size() const;
  // Sessions that only the manager holds: no operation of theirs is pending,
  // so no handler will ever run for them again, and nothing but stop_all()
  // will close them. (A pending read or write holds its session too.)
  std::size_t orphaned() const;

 private:
  mutable std::mutex mutex_;
  std::set<std::shared_ptr<session_base>> sessions_;
};

// Defined by the variant (broken.cpp or fixed.cpp).
std::shared_ptr<session_base> make_session(tcp::socket socket, connection_manager& manager);

class Server : public fixtures::LoopbackServer {
 public:
  struct Options {
    // Called on the server's thread when accept fails (e.g. EMFILE); the
    // server tries again 50 ms later.
    std::function<void(const error_code&)> on_accept_error;
  };
  Server() : Server(Options{}) {}
  explicit Server(Options options);
  ~Server();

  std::size_t sessions() const { return manager_.size(); }
  std::size_t orphaned_sessions() const { return manager_.orphaned(); }

 private:
  connection_manager manager_;
};

}  // namespace close_wait_server
