// A line protocol server on Boost.Asio whose connections schedule work as
// tasks, as AsyncSSH's SSHConnection does. A client sends one request per line
// and gets exactly one final reply per request:
//
//   PING <token>     keepalive               -> PONG <token>
//   FORWARD <port>   forward 127.0.0.1:port  -> FORWARD <id> open
//                                               DATA <id> <line>     (each line the target sends)
//                                               FORWARD <id> closed  (the target closed; so did we)
//                                               FORWARD <id> failed: <reason>
//   anything else                            -> ERR <reason>
//
// After the client's EOF (a half-close), the server closes the connection
// once every request has its final reply. A PING's reply and a forward's
// finish are tasks made with Connection::create_task, whose handle the
// callers ignore; broken.cpp and fixed.cpp differ only in create_task.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "fixtures/asio/loopback_server.hpp"
#include "task.hpp"

namespace dropped_task {

inline constexpr std::size_t max_line = 4096;               // longer requests: ERR line too long
inline constexpr std::size_t max_queued_bytes = 16 * 1024;  // replies queued: stop reading requests

class Connection;

// A connection's strong set of tasks: fixed.cpp's create_task fills it and
// the done callback reaps it; broken.cpp's never touches it. It counts its
// peak, so that a test can tell a set that held the tasks and was reaped
// (peak > 0, size 0) from one that never held any.
class TaskSet {
 public:
  void insert(std::shared_ptr<Task> task) {
    set_.insert(std::move(task));
    peak_ = std::max(peak_, set_.size());
  }
  void erase(const std::shared_ptr<Task>& task) { set_.erase(task); }
  std::size_t size() const { return set_.size(); }
  std::size_t peak() const { return peak_; }

 private:
  std::set<std::shared_ptr<Task>> set_;
  std::size_t peak_ = 0;
};

using Registry = std::set<std::shared_ptr<Connection>>;  // the server's open connections

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, Loop& loop, Registry& registry);
  void start();
  // A hard close: the client socket and every forward's socket. Tasks in
  // flight are not cancelled; their I/O fails and they finish on their own.
  void close();

  // Schedules job on the connection's behalf and returns its handle, which
  // most callers ignore. Defined by the variant (broken.cpp, fixed.cpp).
  std::shared_ptr<Task> create_task(std::string name, Job job);
  std::size_t tasks_held() const { return tasks_.size(); }
  std::size_t peak_tasks_held() const { return tasks_.peak(); }

 private:
  struct Forward {
    explicit Forward(const asio::any_io_executor& ex) : socket(ex) {}
    tcp::socket socket;
    std::string input;
  };

  void do_read();
  void handle(std::string_view line);
  void open_forward(std::uint16_t port);
  void close_forward(int id);

  // The work tasks do.
  Job reply(std::string line);  // a keepalive reply, a packet handler's result
  Job finish_forward(int id);   // relay the target's lines, close the forward, report

  // co_await send(line): resumes once the line is written (throws if it can't be).
  auto send(std::string line) {
    return async_op([this, line = std::move(line)](auto handler) mutable {
      enqueue(std::move(line), std::move(handler));
    });
  }
  void answer(std::string line);  // a final reply written without a task
  void enqueue(std::string line, std::function<void(error_code, std::size_t)> done);
  void do_write();
  void fail_queued();  // what is queued will never be written
  void request_done();
  void maybe_finish();

  tcp::socket socket_;
  Loop& loop_;
  Registry& registry_;
  std::string input_;
  bool reading_ = false, peer_eof_ = false, discarding_ = false, closed_ = false;
  std::size_t unanswered_ = 0;
  struct Out {
    std::string line;
    std::function<void(error_code, std::size_t)> done;
  };
  std::deque<Out> out_;
  bool writing_ = false;
  std::size_t queued_bytes_ = 0;
  int next_forward_ = 1;
  std::map<int, Forward> forwards_;
  TaskSet tasks_;  // the strong set: filled by fixed.cpp's create_task only
};

// Listens on 127.0.0.1 (port 0) and runs its io_context on its own thread
// (fixtures::LoopbackServer).
class Server : public fixtures::LoopbackServer {
 public:
  struct Options {
    // Called on the server's thread when accept fails (e.g. EMFILE); the
    // server tries again 50 ms later instead of spinning.
    std::function<void(const error_code&)> on_accept_error;
  };
  struct Stats {
    std::size_t accepted = 0;
    std::size_t accept_errors = 0;
    std::size_t connections = 0;  // open connections
    std::size_t tasks_held = 0;   // tasks held by their connections' strong sets
    std::size_t peak_tasks_held = 0;  // the most one open connection's set has held
    Loop::Stats loop;
  };

  Server() : Server(Options{}) {}
  explicit Server(Options options);
  ~Server();  // closes every connection, then waits for the tasks in flight to finish
  Stats stats();  // read on the server's thread

 private:
  // The Loop goes before io_ (LoopbackServer's): the destructor's join
  // returns once io_ has run out of work, so no task is left for io_ to
  // destroy, and none reports to a Loop that is gone.
  Loop loop_{io_};
  Registry connections_;
};

}  // namespace dropped_task
