// The canonical scenario, shared by the tests and ci/corpus: n iterations of
// the user's loop body (construct a client, run a GET) against a server.
#pragma once

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "closecheck/closecheck.hpp"
#include "fixtures/variant.hpp"
#include "loop.hpp"

namespace per_loop_client_leak {

inline constexpr const bool& broken = fixtures::variant.broken;

// One io_context's own fds, as Boost 1.74's epoll reactor opens them.
inline const std::vector<closecheck::Kind> loop_fd_kinds = {
    closecheck::Kind::epoll, closecheck::Kind::eventfd, closecheck::Kind::timerfd};

// What the variant leaves behind after n iterations: broken, one loop (epoll,
// eventfd, timerfd) per iteration, still owned by the registry; fixed, nothing.
inline std::vector<closecheck::Expected> expected_after(std::size_t iterations) {
  if (!broken) return {};
  std::vector<closecheck::Expected> e;
  for (auto k : loop_fd_kinds) e.push_back({iterations, closecheck::kind(k).opened_in(fixtures::variant.opened_in)});
  return e;
}

// n iterations of fetch_once(url); each must answer 200 with `body`.
inline void iterations(std::size_t n, const Url& url, const std::string& body) {
  for (std::size_t i = 0; i < n; ++i) {
    auto response = fetch_once(url);
    if (response.status != 200 || response.body != body)
      throw std::runtime_error("iteration " + std::to_string(i) + ": got " +
                               std::to_string(response.status) + " '" + response.body + "'");
  }
}

// "+3 fds per iteration: epoll, eventfd, timerfd", or the flat line.
inline std::string growth_note(const std::vector<closecheck::Fd>& leaked, std::size_t n) {
  if (leaked.empty()) return "+0 fds per iteration over " + std::to_string(n) + " iterations: flat";
  std::map<closecheck::Kind, std::size_t> count;
  for (const auto& fd : leaked) ++count[fd.kind];
  std::string note = "+" + std::to_string(leaked.size() / n) + " fds per iteration";
  auto add = [&, sep = ": "](closecheck::Kind k) mutable {
    note += sep + std::string(closecheck::to_string(k));
    sep = ", ";
  };
  for (auto k : loop_fd_kinds)  // in the order people name them, then anything else
    if (count.erase(k)) add(k);
  for (const auto& [k, _] : count) add(k);
  return note;
}

}  // namespace per_loop_client_leak
