// The in-kernel close watcher of `closecheck run` (docs/cli.md, "How it works"):
// a small eBPF program on the raw tracepoint inet_sock_set_state that reports,
// for the traced processes only, the two TCP transitions closecheck acts on:
//   - LISTEN -> CLOSE: a listener closed (its last reference). The closing
//     thread also gets a SIGSTOP from the kernel (bpf_send_signal_thread) so it
//     stops, as under the seccomp close trap, right after that close(2)
//     returns and before its next instruction: closecheck suppresses that
//     signal and scans while the program is where it closed its listener.
//     No SIGSTOP to an io_uring worker (untraced: it would stop the whole
//     process), a kernel thread or an exiting task: a listener closed by a
//     process's exit is checked at its exit event, as before.
//   - CLOSE_WAIT -> LAST_ACK or CLOSE, only for a process marked as having a
//     socket found at a listener's close: the fate of that socket.
// Every other close(2) runs at native speed. Hand-assembled and loaded with
// bpf(2) (no compiler, no libbpf); offsets into struct sock_common, inet_sock
// and task_struct are read from the kernel's BTF.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace closecheck::cli {

class CloseEvents {
 public:
  enum Interest : std::uint32_t { listener_closes = 1, close_wait_closes = 2 };
  enum class Kind { listener_closed, close_wait_closed };
  struct Event {
    Kind kind = Kind::listener_closed;
    pid_t tid = 0, tgid = 0;
    std::uint64_t monotonic_ns = 0;  // CLOCK_MONOTONIC (std::chrono::steady_clock)
    std::string local, peer;         // as closecheck::describe writes them
    unsigned local_port = 0, peer_port = 0;
  };

  // The watcher, attached; nullptr and why not if this kernel or these
  // privileges do not allow it (no CAP_BPF/CAP_PERFMON, no BTF, a pid
  // namespace other than the initial one, bpf(2) refused).
  static std::unique_ptr<CloseEvents> open(std::string& why_not);
  ~CloseEvents();
  CloseEvents(const CloseEvents&) = delete;
  CloseEvents& operator=(const CloseEvents&) = delete;

  // Readable (poll) when events are waiting.
  int fd() const { return ring_fd_; }
  // What the kernel reports about process tgid (an Interest mask; 0: nothing).
  void watch(pid_t tgid, std::uint32_t interest);
  // Every event committed so far, oldest first.
  std::vector<Event> drain();

 private:
  CloseEvents() = default;
  int traced_fd_ = -1, ring_fd_ = -1, prog_fd_ = -1, link_fd_ = -1;
  void* consumer_ = nullptr;
  void* producer_ = nullptr;
  std::size_t ring_size_ = 0, page_ = 0;
  struct Offsets {
    unsigned daddr, rcv_saddr, dport, num, family, v6_daddr, v6_rcv_saddr, head;
  } off_{};
  unsigned sport_ = 0;  // struct inet_sock's inet_sport
};

}  // namespace closecheck::cli
