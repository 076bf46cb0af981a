// Waiting for the kernel or another thread without a sleep.
//
//   ASSERT_TRUE(closecheck::eventually([&] { return server.sessions() == 0; }));
#pragma once

#include <functional>

#include "closecheck/closecheck.hpp"  // Options

namespace closecheck {

// Polls condition, backing off from options.first_wait and doubling, until it
// holds (true) or options.settle has passed (false): the way to wait, never a
// sleep. settle counts the waiting, not the time condition itself takes.
bool eventually(const std::function<bool()>& condition, const Options& options = {});

}  // namespace closecheck
