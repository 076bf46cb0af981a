// per-loop-client-leak, fixed: the same library; the user constructs the
// client inside the task that run() executes (tornado #3424).
#include "loop.hpp"

// --- The library: Tornado 6.3's, shared by broken.cpp and fixed.cpp ------------
#include "tornado.ipp"

namespace per_loop_client_leak {

// --- The user's code ------------------------------------------------------------

asio::awaitable<Response> fetch_task(Url url, std::chrono::milliseconds timeout) {
  // FIX: the client is constructed inside the task, so it binds to the loop
  // that run() made and is running. No loop is created for it.
  HttpClient client;
  co_return co_await client.fetch(std::move(url), timeout);
}

Response fetch_once(const Url& url, std::chrono::milliseconds timeout) {
  return run(fetch_task(url, timeout));
}

}  // namespace per_loop_client_leak
