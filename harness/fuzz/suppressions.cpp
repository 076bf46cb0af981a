// libFuzzer target: the suppressions parser (CLOSECHECK_SUPPRESS, the lines of
// a --closecheck_suppressions file). Whatever the text, it is accepted or
// refused with a message that names its place ("fuzz:N: why"), never a crash;
// what it accepts can be matched against a test and a leak, and summarised.
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "suppressions.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using closecheck::detail::Suppressions;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Suppressions s;
  std::string error;
  const bool ok = s.add_inline(text, "fuzz", &error);
  if (!ok) {
    if (!error.starts_with("fuzz:")) std::abort();  // a refusal names its place
    return 0;
  }
  if (!error.empty()) std::abort();
  for (const auto& one : s.list) {
    if (one.file != "fuzz" || one.line < 1) std::abort();
  }
  // What it accepted works: a test it may apply to, two leaks, the summary.
  closecheck::Fd tcp;
  tcp.number = 7;
  tcp.kind = closecheck::Kind::socket;
  tcp.target = "socket:[1]";
  tcp.socket = closecheck::SocketInfo{AF_INET, SOCK_STREAM, IPPROTO_TCP, "127.0.0.1:1234",
                                      "127.0.0.1:40000", closecheck::TcpState::close_wait};
  closecheck::Fd pipe;
  pipe.number = 8;
  pipe.kind = closecheck::Kind::pipe;
  pipe.target = "pipe:[2]";
  auto applying = s.applying_to("Suite.Test");
  auto split = s.split(applying, {tcp, pipe});
  if (split.leaks.size() + split.suppressed.size() != 2) std::abort();
  s.record(split);
  (void)s.summary();
  return 0;
}
