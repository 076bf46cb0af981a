// A line server on Boost.Asio that can be stopped and restarted: for each line
// a client sends it answers "ok: <line>". It listens on 127.0.0.1 (port 0) and
// runs its io_context on a thread of its own while it is started
// (fixtures::LoopbackServer: io_ and thread_ are its).
// broken.cpp and fixed.cpp each define Server::stop(); the rest is shared.
#pragma once

#include <boost/asio.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "fixtures/asio/loopback_server.hpp"

namespace stopped_context {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// A line longer than this (without '\n') ends the session.
inline constexpr std::size_t max_line = 4096;

class session;

// Knows the open sessions, so that stop_all() can close their sockets. It does
// not own them: in Asio's idiom a session lives as long as a handler of its
// pending operation holds a shared_ptr to it.
class connection_manager {
 public:
  void add(const std::shared_ptr<session>& s);
  void stop_all();           // closes every live session's socket
  std::size_t size() const;  // live session objects, closed or not

 private:
  mutable std::mutex mutex_;
  std::vector<std::weak_ptr<session>> sessions_;
};

class Server : public fixtures::LoopbackServer {
 public:
  struct Options {
    // Called on the server's thread when accept fails (e.g. EMFILE); the
    // server tries again 50 ms later.
    std::function<void(const error_code&)> on_accept_error;
  };
  Server() : Server(Options{}) {}  // starts
  explicit Server(Options options);
  ~Server();  // stops, then destroys the io_context (and the handlers it still holds)

  // Defined by the variant. Returns once the io_context's thread has ended;
  // the Server, and its io_context, stay alive so that restart() can resume.
  // A second stop() does nothing.
  void stop();
  // Runs the io_context again after stop(). Throws std::logic_error if running.
  void restart();

  bool running() const { return thread_.joinable(); }
  std::size_t sessions() const { return manager_.size(); }

 private:
  connection_manager manager_;
};

}  // namespace stopped_context
