// A network namespace of this process's own, with loopback up and nothing
// else: for a test whose assertions hold only if nobody else can bind its
// ports meanwhile (a port freed and then bound again, a listener proven gone
// by a refused connect). Other tests, run in parallel, bind port 0 too, and
// the kernel may hand them the port just freed.
//
//   std::string why;
//   if (!closecheck::enter_private_network(&why)) GTEST_SKIP() << why;
#pragma once

#include <optional>
#include <string>

namespace closecheck {

// Moves the calling thread into a new network namespace (unshare(CLONE_NEWNET)
// with CAP_SYS_ADMIN, else CLONE_NEWUSER|CLONE_NEWNET, which needs a process
// with one thread) and brings its `lo` up. What the thread opens and starts
// from then on (sockets, threads, child processes) lives there; descriptors
// opened before keep their namespace. Returns how it was made, or nullopt
// with the reason in *error: this process stays where it was. Throws if the
// namespace was entered but its loopback cannot be brought up.
std::optional<std::string> enter_private_network(std::string* error = nullptr);

}  // namespace closecheck
