#include "server.hpp"

#include <chrono>
#include <stdexcept>

#include "closecheck/eventually.hpp"  // and closecheck.hpp: Options

namespace httplib_bound_never_served {

FileServer::FileServer(Options options) {
  http_.set_keep_alive_max_count(1);  // one request per connection: stop() never waits for an idle client
  port_ = http_.bind_to_any_port("127.0.0.1");
  if (port_ < 0) throw std::runtime_error("cannot bind 127.0.0.1");
  if (options.on_bound) options.on_bound(port_);
  // Leaving here by an exception destroys http_, whose destructor calls shut().
  if (!http_.set_mount_point("/", options.root))
    throw std::runtime_error("cannot serve " + options.root + ": not a directory");
  thread_ = std::thread([this] { http_.listen_after_bind(); });
  // stop() ends the accept loop only once it runs (is_running()): wait for it,
  // so that the destructor's stop is never lost.
  closecheck::Options wait;
  wait.settle = std::chrono::seconds(10);
  if (!closecheck::eventually([this] { return http_.is_running(); }, wait)) {
    http_.shut();
    thread_.join();
    throw std::runtime_error("the accept loop did not start");
  }
}

FileServer::~FileServer() {
  http_.shut();
  thread_.join();
}

std::string FileServer::address() const { return "127.0.0.1:" + std::to_string(port_); }

}  // namespace httplib_bound_never_served
