// A Boost.Asio line server that starts helper programs. For "ping" it answers
// "pong" and keeps reading; for "spawn" it starts the helper (by default
// `cat`, which runs until its stdin closes), answers "started <pid>" and
// closes the connection. Anything else gets "error: ..." and a close.
// It listens on 127.0.0.1 (port 0) and runs on its own thread
// (fixtures::LoopbackServer).
// broken.cpp and fixed.cpp each define adopt(); the rest is shared.
#pragma once

#include <boost/asio.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "fixtures/asio/loopback_server.hpp"
#include "fixtures/process.hpp"

namespace inherited_socket {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

// Defined by the variant (broken.cpp or fixed.cpp): called on every socket
// Asio hands the server, the listening one once and each accepted connection.
void adopt(tcp::acceptor& acceptor);
void adopt(tcp::socket& socket);

// Sets FD_CLOEXEC on fd; throws std::system_error if fcntl fails.
void set_close_on_exec(int fd);
bool close_on_exec(int fd);

// The programs the server started. Each blocks reading a pipe held here, so it
// lives until release() closes that pipe (or the destructor kills it).
// Outlives the server, as a helper started by a server outlives the request.
class Helpers {
 public:
  // Returns once the helper runs; it must echo its stdin, as cat does. Throws
  // if it can't start or does not echo.
  pid_t start(const std::vector<std::string>& argv);
  std::vector<pid_t> pids() const;
  // Closes every helper's stdin and waits for it to exit; false if one
  // had not exited by the deadline.
  bool release(std::chrono::milliseconds deadline = std::chrono::seconds(10));

 private:
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<fixtures::Process>> running_;
};

class Server : public fixtures::LoopbackServer {
 public:
  struct Options {
    std::vector<std::string> helper{"cat"};
    std::size_t max_line = 256;
    // Called on the server's thread when accept fails (e.g. EMFILE); the
    // server tries again 50 ms later.
    std::function<void(const error_code&)> on_accept_error{};
  };
  explicit Server(Helpers& helpers) : Server(helpers, Options{}) {}
  Server(Helpers& helpers, Options options);
  ~Server();

  int listening_fd() { return acceptor_.native_handle(); }

 private:
  Helpers& helpers_;
  Options options_;
};

}  // namespace inherited_socket
