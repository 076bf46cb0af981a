// A small event-loop layer in Tornado's shape, on Boost.Asio, and an HTTP
// client on Boost.Beast that uses it.
//
//   Loop::current()  the thread's current loop (an io_context)
//   run(task)        asyncio.run(): its own loop, current while the task runs,
//                    destroyed (its fds closed) and "current" cleared on exit
//   HttpClient       tornado.httpclient.AsyncHTTPClient
//
// loop.cpp holds what every variant shares; each variant file defines the
// Loop::current() and HttpClient members that differ, and the user's code.
#pragma once

#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>

namespace per_loop_client_leak {

namespace asio = boost::asio;
using namespace std::chrono_literals;

struct Url {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::string target = "/";
};

struct Response {
  unsigned status = 0;
  std::string body;
};

class Loop {
 public:
  // The thread's current loop. Defined by the variant: with none, Tornado's
  // shape creates one, makes it current and registers it.
  static asio::io_context& current();
};

// Runs task on a loop of its own, which is current meanwhile; when the task
// has finished, destroys the loop and leaves the thread with no current loop.
// Rethrows what the task threw.
Response run(asio::awaitable<Response> task);

// What the clients of one loop share (Tornado: the one AsyncHTTPClient per IOLoop).
struct ClientState {
  std::size_t fetches = 0;
};

class HttpClient {
 public:
  HttpClient();  // defined by the variant
  // GET url on the loop that runs the coroutine. An error (refused, closed
  // early, not HTTP, no answer within timeout) is thrown as system_error.
  asio::awaitable<Response> fetch(Url url, std::chrono::milliseconds timeout = 10s);
  asio::io_context* loop() const { return loop_; }  // the loop bound at construction, if any

 private:
  asio::io_context* loop_ = nullptr;
  std::shared_ptr<ClientState> state_;
};

// The user's code, one iteration of the upstream report's loop: a client and
// a GET of url under run(). Defined by the variant.
Response fetch_once(const Url& url, std::chrono::milliseconds timeout = 10s);

// --- Shared by the variants (loop.cpp) ---------------------------------------
namespace detail {
// A new loop. asyncio opens a loop's epoll fd and self-pipe when it creates
// the loop; an io_context opens its reactor's fds (epoll, eventfd, timerfd)
// with its first I/O object, so new_loop() makes one to open them now.
std::shared_ptr<asio::io_context> new_loop();
asio::io_context* current_loop();  // nullptr if the thread has none
void set_current_loop(asio::io_context*);
// Tornado's IOLoop._ioloop_for_asyncio: strong references to loops.
asio::io_context& register_loop(std::shared_ptr<asio::io_context>);
// Tornado's AsyncHTTPClient._async_clients: per-loop state, held weakly.
std::shared_ptr<ClientState> client_state_for(asio::io_context&);
// The GET itself (Beast), on the running loop.
asio::awaitable<Response> http_get(Url url, std::chrono::milliseconds timeout);
}  // namespace detail

// --- For tests -----------------------------------------------------------------
std::size_t registered_loops();
// Destroys every registered loop (closing its fds) and clears "current" if it
// was one of them: how a test reclaims what the registry holds.
void clear_registry();
std::size_t cached_client_states();  // live entries in the weak per-loop cache

}  // namespace per_loop_client_leak
