// The canonical scenario, shared by the tests and ci/corpus: the server binds,
// reports its port, then finds that its document root does not exist and gives
// up before serving.
#pragma once

#include <filesystem>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "closecheck/closecheck.hpp"
#include "fixtures/corpus.hpp"  // mark(): the report's time axis
#include "fixtures/net.hpp"
#include "fixtures/variant.hpp"
#include "server.hpp"

namespace httplib_bound_never_served {

inline constexpr const bool& broken = fixtures::variant.broken;
using closecheck::TcpState;
using namespace std::chrono_literals;

// How long a test waits for something that must not happen (an answer from a
// server that never served).
inline constexpr auto hang = 300ms;

inline const std::string missing_root = "/nonexistent/closecheck-httplib-root";

// Starts a FileServer on a root that does not exist: it binds, reports the
// port, fails the mount and throws. Returns the port it had bound.
inline int failed_start() {
  int port = -1;
  try {
    FileServer server({.root = missing_root, .on_bound = [&](int p) {
                                             port = p;
                                             fixtures::corpus::mark("port bound");
                                           }});
  } catch (const std::runtime_error&) {
    if (port > 0) return port;
    throw;
  }
  throw std::logic_error("the server started on a root that does not exist");
}

// Opened through cpp-httplib: a frame of the open site's stack is in
// libcpp-httplib.so (bind_to_any_port creates the socket there), and the
// program's own frame, the site, is in this case's code.
inline closecheck::Match opened_through_httplib(closecheck::Match m) {
  return m.opened_in(fixtures::variant.opened_in)
      .with("opened through libcpp-httplib", [](const closecheck::Fd& fd) {
        if (!closecheck::recording_open_sites()) return true;  // a ThreadSanitizer build
        for (const auto& f : fd.opened.frames)
          if (f.module.find("libcpp-httplib.so") != std::string::npos) return true;
        return false;
      });
}

// A listening socket on one of `ports`, opened through cpp-httplib. The ports
// are read when the match is checked: a block fills them in once its server
// has bound and reported its port.
inline closecheck::Match listener(const std::vector<int>& ports) {
  return opened_through_httplib(closecheck::tcp(TcpState::listen)
                                    .local("127.0.0.1:*")
                                    .with("on a port the server reported", [&ports](const closecheck::Fd& fd) {
                                      for (int port : ports)
                                        if (fd.socket->local == "127.0.0.1:" + std::to_string(port)) return true;
                                      return false;
                                    }));
}

// What the variant leaves after `failed_starts` servers that bound (on
// `ports`) and were stopped and destroyed without serving: broken, the
// listening socket of each, which nothing owns any more; fixed, nothing.
inline std::vector<closecheck::Expected> expected_after(std::size_t failed_starts, const std::vector<int>& ports) {
  if (!broken) return {};
  return {{failed_starts, listener(ports)}};
}

// A document root with one file, removed with it.
class Root {
 public:
  Root() {
    char name[] = "/tmp/closecheck-httplib-XXXXXX";
    if (!mkdtemp(name)) throw std::runtime_error("mkdtemp failed");
    path_ = name;
    std::ofstream(path_ / "hello.txt") << "hello\n";
  }
  ~Root() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  Root(const Root&) = delete;
  Root& operator=(const Root&) = delete;
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// One request on its own connection ("Connection: close"); the whole answer,
// or nullopt if the server has not closed within the deadline.
inline std::optional<std::string> request(int port, const std::string& text,
                                          std::chrono::milliseconds deadline = 10s) {
  auto client = fixtures::connect_tcp("127.0.0.1", static_cast<std::uint16_t>(port));
  fixtures::send_all(client.get(), text);
  return fixtures::read_to_eof(client.get(), deadline);
}

inline std::string get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
}

}  // namespace httplib_bound_never_served
