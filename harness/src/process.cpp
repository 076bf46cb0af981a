// Inspecting another process's descriptors through pidfd_getfd(2).
#include "closecheck/process.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace closecheck {

std::optional<Process> Process::open(pid_t pid, std::string* error) {
  int fd = pid > 0 ? static_cast<int>(syscall(SYS_pidfd_open, pid, 0)) : -1;
  if (fd < 0) {
    if (error) *error = pid <= 0 || errno == ESRCH ? "no such process" : std::strerror(errno);
    return std::nullopt;
  }
  return Process(pid, fd);
}

Process::Process(Process&& o) noexcept : pid_(o.pid_), pidfd_(o.pidfd_) { o.pidfd_ = -1; }

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    if (pidfd_ >= 0) ::close(pidfd_);
    pid_ = o.pid_;
    pidfd_ = o.pidfd_;
    o.pidfd_ = -1;
  }
  return *this;
}

Process::~Process() {
  if (pidfd_ >= 0) ::close(pidfd_);
}

std::string Process::command() const {
  std::ifstream in("/proc/" + std::to_string(pid_) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

std::vector<Fd> Process::fds() const {
  std::vector<Fd> out;
  const std::string dir = "/proc/" + std::to_string(pid_) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  while (auto* e = readdir(d)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const std::string path = dir + "/" + e->d_name;
    struct stat st{};
    if (stat(path.c_str(), &st) != 0) continue;  // closed meanwhile
    Fd fd;
    fd.number = std::atoi(e->d_name);
    fd.device = st.st_dev;
    fd.inode = st.st_ino;
    char target[4096];
    auto n = readlink(path.c_str(), target, sizeof target - 1);
    if (n >= 0) fd.target.assign(target, static_cast<std::size_t>(n));
    out.push_back(std::move(fd));
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const Fd& a, const Fd& b) { return a.number < b.number; });
  return out;
}

std::optional<Fd> Process::inspect(int number) const {
  int copy = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd_, number, 0));
  if (copy < 0) return std::nullopt;
  auto fd = closecheck::inspect(copy);
  ::close(copy);
  if (fd) fd->number = number;
  return fd;
}

std::vector<Fd> Process::inspect_all() const {
  std::vector<Fd> out;
  for (const auto& id : fds())
    if (auto fd = inspect(id.number); fd && fd->device == id.device && fd->inode == id.inode)
      out.push_back(std::move(*fd));
  return out;
}

}  // namespace closecheck
