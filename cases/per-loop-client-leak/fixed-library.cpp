// per-loop-client-leak, fixed in the library: no implicit loop, no registry,
// per-loop state owned by the loop. The user's code is the broken one.
#include "loop.hpp"

#include <stdexcept>

// --- The library, fixed: in place of Tornado 6.3's (tornado.ipp) ----------------
namespace per_loop_client_leak {

asio::io_context& Loop::current() {
  if (auto* loop = detail::current_loop()) return *loop;
  // FIX (library): no loop is created behind the caller's back, and there is
  // no registry to keep one alive: asking outside run() is an error.
  throw std::logic_error("Loop::current(): no current loop (call it inside run())");
}

namespace {
// FIX (library): per-loop state is a service of the loop itself: made on
// first use, destroyed with the loop.
struct client_service : asio::execution_context::service {
  static inline asio::execution_context::id id;
  explicit client_service(asio::execution_context& loop) : service(loop) {}
  void shutdown() override {}
  ClientState state;
};
}  // namespace

// FIX (library): nothing is bound when the client is constructed...
HttpClient::HttpClient() = default;

asio::awaitable<Response> HttpClient::fetch(Url url, std::chrono::milliseconds timeout) {
  // ...but when the fetch runs, to the loop that runs it.
  ++asio::use_service<client_service>(Loop::current()).state.fetches;
  co_return co_await detail::http_get(std::move(url), timeout);
}

}  // namespace per_loop_client_leak

namespace per_loop_client_leak {

// --- The user's code ------------------------------------------------------------

Response fetch_once(const Url& url, std::chrono::milliseconds timeout) {
  // As in broken.cpp: HttpClient() runs before run() has made its loop. With
  // this library that is harmless: nothing binds until the fetch runs.
  return run(HttpClient().fetch(url, timeout));
}

}  // namespace per_loop_client_leak
