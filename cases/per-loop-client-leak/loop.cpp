#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <map>
#include <mutex>
#include <vector>

#include "loop.hpp"

namespace per_loop_client_leak {

namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;

namespace {

thread_local asio::io_context* current = nullptr;

std::mutex registry_mutex;
std::vector<std::shared_ptr<asio::io_context>> registry;

std::mutex cache_mutex;
std::map<asio::io_context*, std::weak_ptr<ClientState>> cache;

}  // namespace

namespace detail {

std::shared_ptr<asio::io_context> new_loop() {
  auto loop = std::make_shared<asio::io_context>(1);
  asio::steady_timer open_the_reactor(*loop);
  return loop;
}

asio::io_context* current_loop() { return current; }
void set_current_loop(asio::io_context* loop) { current = loop; }

asio::io_context& register_loop(std::shared_ptr<asio::io_context> loop) {
  std::lock_guard lock(registry_mutex);
  registry.push_back(std::move(loop));
  return *registry.back();
}

std::shared_ptr<ClientState> client_state_for(asio::io_context& loop) {
  std::lock_guard lock(cache_mutex);
  auto& entry = cache[&loop];
  auto state = entry.lock();
  if (!state) entry = state = std::make_shared<ClientState>();
  return state;
}

asio::awaitable<Response> http_get(Url url, std::chrono::milliseconds timeout) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  stream.expires_after(timeout);  // one deadline for the whole exchange
  co_await stream.async_connect(tcp::endpoint(asio::ip::make_address(url.host), url.port),
                                asio::use_awaitable);
  bhttp::request<bhttp::empty_body> request{bhttp::verb::get, url.target, 11};
  request.set(bhttp::field::host, url.host + ":" + std::to_string(url.port));
  request.set(bhttp::field::user_agent, "closecheck");
  request.keep_alive(false);
  co_await bhttp::async_write(stream, request, asio::use_awaitable);
  beast::flat_buffer buffer;
  bhttp::response<bhttp::string_body> response;
  co_await bhttp::async_read(stream, buffer, response, asio::use_awaitable);
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  co_return Response{response.result_int(), std::move(response.body())};
}

}  // namespace detail

Response run(asio::awaitable<Response> task) {
  auto loop = detail::new_loop();
  detail::set_current_loop(loop.get());
  std::optional<Response> result;
  std::exception_ptr error;
  asio::co_spawn(*loop, std::move(task), [&](std::exception_ptr e, Response r) {
    error = e;
    result = std::move(r);
  });
  try {
    loop->run();
  } catch (...) {
    error = std::current_exception();
  }
  loop.reset();                        // asyncio.run: loop.close()
  detail::set_current_loop(nullptr);   // asyncio.run: set_event_loop(None)
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

std::size_t registered_loops() {
  std::lock_guard lock(registry_mutex);
  return registry.size();
}

void clear_registry() {
  std::vector<std::shared_ptr<asio::io_context>> loops;
  {
    std::lock_guard lock(registry_mutex);
    loops.swap(registry);
  }
  for (const auto& loop : loops)
    if (loop.get() == current) current = nullptr;
}  // the loops are destroyed here

std::size_t cached_client_states() {
  std::lock_guard lock(cache_mutex);
  std::erase_if(cache, [](const auto& entry) { return entry.second.expired(); });
  return cache.size();
}

}  // namespace per_loop_client_leak
