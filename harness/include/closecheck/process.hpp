// Another process's descriptors, classified exactly as inspect() classifies
// this process's own: each one is duplicated into this process with
// pidfd_getfd(2) (Linux >= 5.6; needs ptrace permission over the process),
// inspected, and the duplicate closed. The reported number is the target's.
//
//   auto p = closecheck::Process::open(pid);
//   for (const auto& fd : p->inspect_all()) std::cout << describe(fd) << '\n';
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "closecheck/closecheck.hpp"

namespace closecheck {

class Process {
 public:
  // A pidfd for pid; nullopt with a reason in *error ("no such process", ...).
  static std::optional<Process> open(pid_t pid, std::string* error = nullptr);
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  ~Process();

  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_; }
  std::string command() const;  // /proc/PID/comm

  // Identities (number, device, inode, target) from /proc/PID/fd: no duplication.
  std::vector<Fd> fds() const;
  // One descriptor, classified; nullopt if it is closed or cannot be duplicated.
  std::optional<Fd> inspect(int number) const;
  std::vector<Fd> inspect_all() const;

 private:
  Process(pid_t pid, int pidfd) : pid_(pid), pidfd_(pidfd) {}
  pid_t pid_ = 0;
  int pidfd_ = -1;
};

}  // namespace closecheck
