#include "server.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace inherited_socket {

void set_close_on_exec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) != 0)
    throw std::system_error(errno, std::generic_category(), "fcntl(FD_CLOEXEC)");
}

bool close_on_exec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) throw std::system_error(errno, std::generic_category(), "fcntl(F_GETFD)");
  return flags & FD_CLOEXEC;
}

pid_t Helpers::start(const std::vector<std::string>& argv) {
  auto p = std::make_unique<fixtures::Process>(argv);
  // posix_spawn() returns while the child is still in its exec, holding a copy
  // of every descriptor, close-on-exec ones too, until the exec closes them. A
  // line echoed back shows the helper's program runs, holding only what it
  // inherited.
  if (::write(p->stdin_fd(), "\n", 1) != 1 ||
      fixtures::read_until(p->stdout_fd(), '\n', std::chrono::seconds(10)) != "\n")
    throw std::runtime_error("the helper " + argv[0] + " did not echo a line from its stdin (as cat does)");
  pid_t pid = p->pid();
  std::lock_guard lock(mutex_);
  running_.push_back(std::move(p));
  return pid;
}

std::vector<pid_t> Helpers::pids() const {
  std::lock_guard lock(mutex_);
  std::vector<pid_t> out;
  for (const auto& p : running_) out.push_back(p->pid());
  return out;
}

bool Helpers::release(std::chrono::milliseconds deadline) {
  std::vector<std::unique_ptr<fixtures::Process>> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(running_);
  }
  bool ok = true;
  for (auto& p : all) p->close_stdin();
  for (auto& p : all) ok = p->wait(deadline).has_value() && ok;
  return ok;  // a helper still running is killed by ~Process here
}

namespace {

class session : public std::enable_shared_from_this<session> {
 public:
  session(tcp::socket socket, Helpers& helpers, const Server::Options& options)
      : socket_(std::move(socket)), helpers_(helpers), options_(options) {}

  void start() { do_read(); }

 private:
  void do_read() {
    asio::async_read_until(socket_, asio::dynamic_buffer(request_, options_.max_line), '\n',
                           [this, self = shared_from_this()](error_code ec, std::size_t n) {
      if (ec == asio::error::not_found) return answer("error: line too long\n", true);
      if (ec) return;  // the peer went away: the socket closes with the session
      auto line = request_.substr(0, n - 1);
      request_.erase(0, n);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line == "ping") return answer("pong\n", false);
      if (line != "spawn") return answer("error: unknown request\n", true);
      try {
        answer("started " + std::to_string(helpers_.start(options_.helper)) + "\n", true);
      } catch (const std::exception& e) {
        answer(std::string("error: ") + e.what() + "\n", true);
      }
    });
  }

  // Writes the reply, then reads the next request or closes the connection.
  void answer(std::string reply, bool then_close) {
    reply_ = std::move(reply);
    asio::async_write(socket_, asio::buffer(reply_),
                      [this, self = shared_from_this(), then_close](error_code ec, std::size_t) {
      if (ec || then_close) {
        socket_.close(ec);  // this process lets go; a child that inherited it does not
        return;
      }
      do_read();
    });
  }

  tcp::socket socket_;
  Helpers& helpers_;
  const Server::Options& options_;
  std::string request_, reply_;
};

}  // namespace

Server::Server(Helpers& helpers, Options options) : helpers_(helpers), options_(std::move(options)) {
  adopt(acceptor_);
  serve([this](tcp::socket socket) {
    adopt(socket);
    std::make_shared<session>(std::move(socket), helpers_, options_)->start();
  }, options_.on_accept_error);
  thread_ = std::thread([this] { io_.run(); });
}

Server::~Server() {
  stop_serving([this] { io_.stop(); });  // idle sessions are destroyed with io_, closing their sockets
}

}  // namespace inherited_socket
