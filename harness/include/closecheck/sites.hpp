// Open sites and double closes of another process, as `closecheck run` reads
// them (a test of its own process needs only Fd::opened and
// take_bad_closes(), in closecheck.hpp). pid 0 means this process.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "closecheck/closecheck.hpp"

namespace closecheck {

// The fds the recorder itself holds in pid: libunwind's memory-validation
// pipe. Not the program's: never report them.
std::vector<int> recorder_fds(pid_t pid = 0);
// Fills fd.opened for each of pid's fds. pid's other process must be stopped
// or its fds still open (ptrace permission needed). closed_too: also an fd
// pid has closed since (the same object, by device and inode, under the same
// number): where a parent opened what it handed down.
void find_open_sites(std::vector<Fd>& fds, pid_t pid = 0, bool closed_too = false);
// The bad closes of pid after the first *seen of them; updates *seen.
std::vector<BadClose> bad_closes(std::uint64_t* seen = nullptr, pid_t pid = 0);
// "    <verb> at file:line function" and `frames` more "      from" lines.
std::string site_lines(const OpenSite&, const char* verb, std::size_t frames);

}  // namespace closecheck
