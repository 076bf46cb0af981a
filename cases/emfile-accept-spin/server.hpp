// A line server on Boost.Asio: for each line a client sends, it answers
// "ok: <line>"; lines longer than max_line close the connection. It listens
// on 127.0.0.1 (port 0), runs on its own thread and counts its failed accepts.
// The variants (broken.cpp, fixed-reserve.cpp, fixed-backoff.cpp) each define
// do_accept(), the accept loop; the rest is shared.
#pragma once

#include <boost/asio.hpp>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "fixtures/net.hpp"

namespace emfile_accept_spin {

namespace asio = boost::asio;
using asio::ip::tcp;
using boost::system::error_code;

inline constexpr std::size_t max_line = 1024;

class Server {
 public:
  Server();
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  tcp::endpoint endpoint() const { return endpoint_; }
  std::uint64_t failed_accepts() const { return failed_accepts_; }
  std::uint64_t accepted() const { return accepted_; }
  // Returns once the server's thread has run every handler that was ready
  // before the call (false if it has not within 10 s): an accept that failed
  // before then, and what the variant did about it, is over.
  bool settle();

 private:
  void do_accept();  // defined by the variant
  void start_session(tcp::socket socket);

  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_;  // fixed-backoff's timer
  fixtures::UniqueFd spare_;  // fixed-reserve's spare descriptor
  tcp::endpoint endpoint_;
  std::atomic<std::uint64_t> failed_accepts_{0}, accepted_{0};
  std::thread thread_;
};

}  // namespace emfile_accept_spin
