// per-loop-client-leak, broken: the loop from tornado #3424, on Tornado 6.3's
// library.
#include "loop.hpp"

// --- The library: Tornado 6.3's, shared by broken.cpp and fixed.cpp ------------
#include "tornado.ipp"

namespace per_loop_client_leak {

// --- The user's code ------------------------------------------------------------

Response fetch_once(const Url& url, std::chrono::milliseconds timeout) {
  // FLAW: HttpClient() runs before run() has made its loop, as in
  // `asyncio.run(Client().call())`: it binds to a loop made for it, and run()
  // then fetches on a loop of its own. Each call leaves one loop behind.
  return run(HttpClient().fetch(url, timeout));
}

}  // namespace per_loop_client_leak
