// per-loop-client-leak: the library as Tornado 6.3 has it (tornado/ioloop.py,
// tornado/httpclient.py; implicit loop creation, commit c8f27ee4): the
// Loop::current() and HttpClient members that loop.hpp leaves to the variant.
// One copy, #included by the two variants whose library this is, broken.cpp
// and fixed.cpp; fixed-library.cpp has the library's fix in its place.
// Expects loop.hpp to be included first.

namespace per_loop_client_leak {

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

}  // namespace per_loop_client_leak
