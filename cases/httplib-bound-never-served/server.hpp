// A static file server on cpp-httplib. It binds 127.0.0.1 (port 0) first and
// reports the port (a supervisor waits for it), then mounts its document root,
// then serves on its own thread. When the root cannot be mounted it gives up
// between the bind and the listen: the constructor throws, having never served.
// broken.cpp and fixed.cpp each define HttpServer::shut(); the rest is shared.
#pragma once

#include <httplib.h>

#include <functional>
#include <string>
#include <thread>

namespace httplib_bound_never_served {

// The program's own httplib::Server (as httplib's SSLServer is one): its
// destructor shuts it down, whether it served or not.
class HttpServer : public httplib::Server {
 public:
  ~HttpServer() override { shut(); }
  // Defined by the variant (broken.cpp or fixed.cpp): stops the server and
  // lets go of its listening socket.
  void shut();
  // The listening socket httplib holds (-1 when it holds none): for the tests.
  int listening_fd() const { return svr_sock_; }
};

class FileServer {
 public:
  struct Options {
    std::string root;                         // the directory served at "/"
    std::function<void(int port)> on_bound{};  // called once bound, before the mount
  };
  // Throws std::runtime_error if it cannot bind, mount the root or start
  // serving. It has bound by the time the mount fails.
  explicit FileServer(Options options);
  ~FileServer();  // stops serving and joins the thread
  FileServer(const FileServer&) = delete;
  FileServer& operator=(const FileServer&) = delete;

  int port() const { return port_; }
  std::string address() const;  // "127.0.0.1:PORT", as ss shows it

 private:
  HttpServer http_;
  int port_ = -1;
  std::thread thread_;
};

}  // namespace httplib_bound_never_served
