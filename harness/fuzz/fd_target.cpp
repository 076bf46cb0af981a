// libFuzzer target: what /proc/self/fd/N may read as ("socket:[123]",
// "anon_inode:[eventfd]", "pipe:[9]", any path) under any fstat file type.
// Every input gets a kind; only "socket:[digits]" gets a socket inode, and the
// same one printed back; the report line and JSON hold no raw control byte.
// The first byte picks the file type, the rest is the target.
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <string>

#include "closecheck/closecheck.hpp"
#include "format.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace closecheck;
  if (size == 0) return 0;
  static constexpr mode_t types[] = {S_IFSOCK, S_IFIFO, S_IFDIR, S_IFREG, S_IFCHR, S_IFBLK, S_IFLNK, 0};
  const mode_t mode = types[data[0] % std::size(types)];
  Fd fd;
  fd.number = 3;
  fd.target.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  fd.kind = detail::classify(fd.target, mode);

  const bool anon = fd.target.starts_with("anon_inode:");
  const bool anon_kind = fd.kind == Kind::eventfd || fd.kind == Kind::epoll ||
                         fd.kind == Kind::timerfd || fd.kind == Kind::signalfd ||
                         fd.kind == Kind::inotify || fd.kind == Kind::pidfd ||
                         fd.kind == Kind::anon_inode;
  if (anon != anon_kind) std::abort();
  if (!anon && S_ISSOCK(mode) != (fd.kind == Kind::socket)) std::abort();

  if (auto inode = detail::socket_inode(fd.target)) {
    if (!fd.target.starts_with("socket:[") || !fd.target.ends_with("]")) std::abort();
    if (detail::socket_inode("socket:[" + std::to_string(*inode) + "]") != inode) std::abort();
  }

  if (!describe(fd).starts_with("fd 3  " + std::string(to_string(fd.kind)))) std::abort();
  for (unsigned char c : to_json(fd))
    if (c < 0x20) std::abort();
  return 0;
}
