// libFuzzer target: one recv() of a NETLINK_SOCK_DIAG dump, as sweep() reads
// it, with any bytes in it. The parser must stay inside the buffer (it is
// copied to a heap block of exactly that size, so AddressSanitizer sees any
// read past it), fail only with a "sock_diag: ..." error, and give inet
// sockets printable addresses.
#include <linux/netlink.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "closecheck/closecheck.hpp"
#include "closecheck/sweep.hpp"
#include "format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace closecheck;
  if (size > 32768) return 0;  // sweep()'s buffer
  // malloc's alignment is nlmsghdr's, as the buffer's in sweep() is.
  std::unique_ptr<void, decltype(&std::free)> buf(std::malloc(size ? size : 1), &std::free);
  if (size) std::memcpy(buf.get(), data, size);
  std::vector<DiagSocket> out;
  try {
    detail::parse_diag(buf.get(), size, out);
  } catch (const std::runtime_error& e) {
    if (!std::string_view(e.what()).starts_with("sock_diag: ")) std::abort();
  }
  for (const auto& s : out) {
    if ((s.family == AF_INET || s.family == AF_INET6) && (s.local.empty() || s.peer.empty()))
      std::abort();
    if (to_string(s.state).empty()) std::abort();
    if (describe(HeldElsewhere{s, 1, 3, "fuzz"}).empty()) std::abort();
  }
  return 0;
}
