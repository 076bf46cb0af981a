// libFuzzer target: the parse of /proc/PID/stat that `closecheck watch` uses
// for a task's flags (field 9, after a command that may hold spaces and
// parentheses). Any text is a value or nullopt, never an exception; and a
// well-formed line carrying the input as its command gives back its flags.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "cli.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using closecheck::cli::stat_flags;
  std::string text(reinterpret_cast<const char*>(data), size);
  if (auto flags = stat_flags(text); flags && text.find(')') == std::string::npos) std::abort();

  unsigned long expected = 0;
  std::memcpy(&expected, data, std::min(size, sizeof expected));
  std::string line = "4242 (" + text + ") S 1 4242 4242 0 -1 " + std::to_string(expected) +
                     " 161 0 0 0 0 0 0 0 20 0 1 0 12345 2334720 128 18446744073709551615\n";
  if (stat_flags(line) != expected) std::abort();
  return 0;
}
