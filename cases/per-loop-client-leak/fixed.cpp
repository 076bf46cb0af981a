// per-loop-client-leak, fixed: the same library; the user constructs the
// client inside the task that run() executes (tornado #3424).
#include "loop.hpp"

namespace per_loop_client_leak {

// --- The library: tornado/ioloop.py, tornado/httpclient.py --------------------

asio::io_context& Loop::current() {
  if (auto* loop = detail::current_loop()) return *loop;
  // FLAW (library): with no current loop, one is created, made current and
  // kept alive by the registry. Nobody will run it, close it, or unregister it.
  auto& loop = detail::register_loop(detail::new_loop());
  detail::set_current_loop(&loop);
  return loop;
}

// FLAW (library): the client binds to the current loop when it is constructed;
// its per-loop state sits in a weak cache, next to the loop, not in it.
HttpClient::HttpClient() : loop_(&Loop::current()), state_(detail::client_state_for(*loop_)) {}

asio::awaitable<Response> HttpClient::fetch(Url url, std::chrono::milliseconds timeout) {
  ++state_->fetches;
  co_return co_await detail::http_get(std::move(url), timeout);
}

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
