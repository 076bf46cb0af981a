// The in-kernel close watcher (close_events.hpp): BTF offsets, the program, the
// ring buffer.
#include "close_events.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>

#include "format.hpp"

namespace closecheck::cli {

namespace {

long bpf(int cmd, bpf_attr& attr) { return syscall(SYS_bpf, cmd, &attr, sizeof attr); }

std::string failed(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Byte offsets of members of struct sock_common, from the kernel's BTF
// (/sys/kernel/btf/vmlinux): members inside anonymous unions and structs
// are found through them.
class Btf {
 public:
  explicit Btf(const char* path) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st{};
    if (fstat(fd, &st) != 0 || st.st_size < 24) {
      close(fd);
      return;
    }
    size_ = static_cast<std::size_t>(st.st_size);
    // Mapped where the kernel allows it (6.16 and later); else read 4 KiB at a
    // time (sysfs), which takes some milliseconds more.
    void* map = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      mapped_ = static_cast<const char*>(map);
      data_ptr_ = mapped_;
    } else {
      copy_.resize(size_);
      std::size_t got = 0;
      for (ssize_t n; got < size_ && (n = read(fd, &copy_[got], size_ - got)) > 0;) got += static_cast<std::size_t>(n);
      size_ = got;
      data_ptr_ = copy_.data();
    }
    close(fd);
    if (size_ < 24 || u16(0) != 0xEB9F) return;  // not BTF (or another byte order)
    auto hdr = u32(4), type_off = u32(8), type_len = u32(12), str_off = u32(16), str_len = u32(20);
    types_ = hdr + type_off;
    strings_ = hdr + str_off;
    if (types_ + type_len > size_ || strings_ + str_len > size_) return;
    end_ = types_ + type_len;
    next_ = types_;
    at_.push_back(0);  // type 0 is void
  }
  ~Btf() {
    if (mapped_) munmap(const_cast<char*>(mapped_), size_);
  }
  Btf(const Btf&) = delete;
  Btf& operator=(const Btf&) = delete;
  // The offset in bytes of member `name` of struct `type`.
  std::optional<unsigned> offset(const char* type, const char* name) {
    for (std::size_t id = 1; id < at_.size() || index(id); ++id)
      if (kind(id) == 4 && named(at_[id], type)) return member(id, name, 0);
    return std::nullopt;
  }

 private:
  std::uint16_t u16(std::size_t p) const { std::uint16_t v; std::memcpy(&v, data_ptr_ + p, 2); return v; }
  std::uint32_t u32(std::size_t p) const { std::uint32_t v; std::memcpy(&v, data_ptr_ + p, 4); return v; }
  // Types are indexed as far as a lookup needs (the structs wanted here come
  // in the first third of vmlinux's).
  bool index(std::size_t id) {
    while (at_.size() <= id) {
      auto p = next_;
      if (p + 12 > end_) return false;
      at_.push_back(p);
      auto info = u32(p + 4), vlen = info & 0xffff, kind = (info >> 24) & 0x1f;
      p += 12;
      switch (kind) {
        case 1: case 14: case 17: p += 4; break;                  // int, var, decl_tag
        case 3: p += 12; break;                                   // array
        case 4: case 5: case 15: case 19: p += 12 * vlen; break;  // struct, union, datasec, enum64
        case 6: case 13: p += 8 * vlen; break;                    // enum, func_proto
        default: break;                                           // no extra data
      }
      next_ = p;
    }
    return true;
  }
  unsigned kind(std::size_t id) const { return (u32(at_[id] + 4) >> 24) & 0x1f; }
  bool named(std::size_t p, const char* name) const {
    auto s = strings_ + u32(p);
    auto n = std::strlen(name);
    return s + n < size_ && std::memcmp(data_ptr_ + s, name, n + 1) == 0;
  }
  // Through typedefs and qualifiers to the type itself.
  std::size_t resolve(std::size_t id) {
    for (int hops = 0; id && index(id) && hops < 32; ++hops) {
      auto k = kind(id);
      if ((k < 8 || k > 11) && k != 18) return id;  // not a typedef, qualifier or type tag
      id = u32(at_[id] + 8);
    }
    return 0;
  }
  std::optional<unsigned> member(std::size_t id, const char* name, unsigned bits) {
    auto info = u32(at_[id] + 4);
    bool bitfields = info >> 31;
    for (unsigned i = 0; i < (info & 0xffff); ++i) {
      auto m = at_[id] + 12 + 12 * i;
      auto off = bits + (bitfields ? u32(m + 8) & 0xffffff : u32(m + 8));
      if (u32(m) == 0) {  // anonymous: look inside
        auto inner = resolve(u32(m + 4));
        if (inner && (kind(inner) == 4 || kind(inner) == 5))
          if (auto found = member(inner, name, off)) return found;
      } else if (named(m, name)) {
        return off / 8;
      }
    }
    return std::nullopt;
  }

  const char* mapped_ = nullptr;
  const char* data_ptr_ = nullptr;
  std::vector<char> copy_;
  std::size_t size_ = 0;
  std::size_t types_ = 0, strings_ = 0, end_ = 0, next_ = 0;
  std::vector<std::size_t> at_;
};

// A hand assembler for the few instructions the program needs.
struct Asm {
  std::vector<bpf_insn> code;
  std::vector<std::pair<std::size_t, int>> fixups;  // jump at index -> label
  std::vector<std::ptrdiff_t> labels = std::vector<std::ptrdiff_t>(8, -1);

  void emit(std::uint8_t op, int dst, int src, std::int16_t off, std::int32_t imm) {
    bpf_insn i{};
    i.code = op;
    i.dst_reg = dst & 0xf;
    i.src_reg = src & 0xf;
    i.off = off;
    i.imm = imm;
    code.push_back(i);
  }
  void mov(int dst, int src) { emit(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
  void movi(int dst, std::int32_t imm) { emit(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
  void alui(std::uint8_t op, int dst, std::int32_t imm) { emit(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm); }
  void andr(int dst, int src) { emit(BPF_ALU64 | BPF_AND | BPF_X, dst, src, 0, 0); }
  void ldx(std::uint8_t size, int dst, int src, std::int16_t off) { emit(BPF_LDX | size | BPF_MEM, dst, src, off, 0); }
  void stx(std::uint8_t size, int dst, int src, std::int16_t off) { emit(BPF_STX | size | BPF_MEM, dst, src, off, 0); }
  void sti(std::uint8_t size, int dst, std::int16_t off, std::int32_t imm) { emit(BPF_ST | size | BPF_MEM, dst, 0, off, imm); }
  void map(int dst, int fd) {
    emit(BPF_LD | BPF_DW | BPF_IMM, dst, BPF_PSEUDO_MAP_FD, 0, fd);
    emit(0, 0, 0, 0, 0);
  }
  void call(int helper) { emit(BPF_JMP | BPF_CALL, 0, 0, 0, helper); }
  void jmp(std::uint8_t op, int dst, std::int32_t imm, int label) {
    fixups.push_back({code.size(), label});
    emit(BPF_JMP | op | BPF_K, dst, 0, 0, imm);
  }
  void ja(int label) {
    fixups.push_back({code.size(), label});
    emit(BPF_JMP | BPF_JA, 0, 0, 0, 0);
  }
  void label(int l) { labels[l] = static_cast<std::ptrdiff_t>(code.size()); }
  void exit() { emit(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }
  void link() {
    for (auto [at, l] : fixups) code[at].off = static_cast<std::int16_t>(labels[l] - static_cast<std::ptrdiff_t>(at) - 1);
  }
};

// TCP states (include/net/tcp_states.h).
constexpr int tcp_close_wait = 8, tcp_last_ack = 9, tcp_listen = 10, tcp_close = 7;
// task_struct.flags (include/linux/sched.h).
constexpr std::int32_t pf_exiting = 0x4, pf_io_worker = 0x10, pf_kthread = 0x00200000;
// The event: pid_tgid, kind, inet_sport and 2 bytes of padding, ktime, then the head of struct sock_common.
constexpr int event_header = 24;
constexpr std::size_t ring_bytes = 64 * 1024;

}  // namespace

std::unique_ptr<CloseEvents> CloseEvents::open(std::string& why_not) {
  // bpf_get_current_pid_tgid() names processes as the initial pid namespace
  // does, and so does ptrace only there.
  struct stat ns{};
  if (stat("/proc/self/ns/pid", &ns) != 0 || ns.st_ino != 0xEFFFFFFCu) {
    why_not = "closecheck is not in the initial pid namespace";
    return nullptr;
  }
  Btf btf("/sys/kernel/btf/vmlinux");
  std::unique_ptr<CloseEvents> e(new CloseEvents);
  auto& o = e->off_;
  auto get = [&](const char* name, unsigned& out) {
    auto v = btf.offset("sock_common", name);
    if (v) out = *v;
    return v.has_value();
  };
  if (!get("skc_daddr", o.daddr) || !get("skc_rcv_saddr", o.rcv_saddr) || !get("skc_dport", o.dport) ||
      !get("skc_num", o.num) || !get("skc_family", o.family) || !get("skc_v6_daddr", o.v6_daddr) ||
      !get("skc_v6_rcv_saddr", o.v6_rcv_saddr)) {
    why_not = "no BTF for struct sock_common in /sys/kernel/btf/vmlinux";
    return nullptr;
  }
  unsigned task_flags = 0;
  if (auto flags = btf.offset("task_struct", "flags")) {
    task_flags = *flags;
  } else {
    why_not = "no BTF for struct task_struct in /sys/kernel/btf/vmlinux";
    return nullptr;
  }
  if (auto sport = btf.offset("inet_sock", "inet_sport")) {
    e->sport_ = *sport;
  } else {
    why_not = "no BTF for struct inet_sock in /sys/kernel/btf/vmlinux";
    return nullptr;
  }
  o.head = std::max({o.daddr + 4, o.rcv_saddr + 4, o.dport + 2, o.num + 2, o.family + 2, o.v6_daddr + 16,
                     o.v6_rcv_saddr + 16});
  o.head = (o.head + 7) / 8 * 8;
  if (o.head > 256) {
    why_not = "struct sock_common is laid out unexpectedly";
    return nullptr;
  }

  bpf_attr attr{};
  attr.map_type = BPF_MAP_TYPE_HASH;
  attr.key_size = 4;
  attr.value_size = 4;
  attr.max_entries = 8192;  // processes traced at once
  e->traced_fd_ = static_cast<int>(bpf(BPF_MAP_CREATE, attr));
  if (e->traced_fd_ < 0) {
    why_not = failed("bpf(BPF_MAP_CREATE)");
    return nullptr;
  }
  attr = {};
  attr.map_type = BPF_MAP_TYPE_RINGBUF;
  attr.max_entries = ring_bytes;
  e->ring_fd_ = static_cast<int>(bpf(BPF_MAP_CREATE, attr));
  if (e->ring_fd_ < 0) {
    why_not = failed("bpf(BPF_MAP_CREATE ringbuf)");
    return nullptr;
  }
  e->page_ = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  e->ring_size_ = ring_bytes;
  e->consumer_ = mmap(nullptr, e->page_, PROT_READ | PROT_WRITE, MAP_SHARED, e->ring_fd_, 0);
  e->producer_ = mmap(nullptr, e->page_ + 2 * ring_bytes, PROT_READ, MAP_SHARED, e->ring_fd_,
                      static_cast<off_t>(e->page_));
  if (e->consumer_ == MAP_FAILED || e->producer_ == MAP_FAILED) {
    if (e->consumer_ == MAP_FAILED) e->consumer_ = nullptr;
    if (e->producer_ == MAP_FAILED) e->producer_ = nullptr;
    why_not = failed("mmap of the ring buffer");
    return nullptr;
  }

  // r6 ctx, r7 old state then the event, r8 new state, r9 the kind (1, 2).
  enum { out, common, not_listen };
  Asm a;
  a.mov(6, 1);
  a.ldx(BPF_DW, 7, 6, 8);
  a.ldx(BPF_DW, 8, 6, 16);
  a.movi(9, Interest::listener_closes);
  a.jmp(BPF_JNE, 7, tcp_listen, not_listen);
  a.jmp(BPF_JNE, 8, tcp_close, out);
  a.ja(common);
  a.label(not_listen);
  a.jmp(BPF_JNE, 7, tcp_close_wait, out);
  a.movi(9, Interest::close_wait_closes);
  a.jmp(BPF_JEQ, 8, tcp_last_ack, common);
  a.jmp(BPF_JNE, 8, tcp_close, out);
  a.label(common);
  a.call(BPF_FUNC_get_current_pid_tgid);
  a.stx(BPF_DW, 10, 0, -8);
  a.alui(BPF_RSH, 0, 32);
  a.stx(BPF_W, 10, 0, -16);
  a.map(1, e->traced_fd_);
  a.mov(2, 10);
  a.alui(BPF_ADD, 2, -16);
  a.call(BPF_FUNC_map_lookup_elem);
  a.jmp(BPF_JEQ, 0, 0, out);
  a.ldx(BPF_W, 1, 0, 0);
  a.andr(1, 9);
  a.jmp(BPF_JEQ, 1, 0, out);
  a.map(1, e->ring_fd_);
  a.movi(2, static_cast<std::int32_t>(event_header + o.head));
  a.movi(3, 0);
  a.call(BPF_FUNC_ringbuf_reserve);
  a.jmp(BPF_JEQ, 0, 0, out);
  a.mov(7, 0);
  a.ldx(BPF_DW, 1, 10, -8);
  a.stx(BPF_DW, 7, 1, 0);
  a.stx(BPF_W, 7, 9, 8);
  a.sti(BPF_W, 7, 12, 0);
  // inet_sport: a listener bound to port 0 has lost skc_num by now (inet_put_port).
  a.mov(1, 7);
  a.alui(BPF_ADD, 1, 12);
  a.movi(2, 2);
  a.ldx(BPF_DW, 3, 6, 0);
  a.alui(BPF_ADD, 3, static_cast<std::int32_t>(e->sport_));
  a.call(BPF_FUNC_probe_read_kernel);
  a.call(BPF_FUNC_ktime_get_ns);
  a.stx(BPF_DW, 7, 0, 16);
  a.mov(1, 7);
  a.alui(BPF_ADD, 1, event_header);
  a.movi(2, static_cast<std::int32_t>(o.head));
  a.ldx(BPF_DW, 3, 6, 0);
  a.call(BPF_FUNC_probe_read_kernel);
  a.mov(1, 7);
  a.movi(2, 0);
  a.call(BPF_FUNC_ringbuf_submit);
  a.jmp(BPF_JNE, 9, Interest::listener_closes, out);
  // Not to an io_uring worker (not traced: its SIGSTOP would stop the whole
  // process), a kernel thread, or an exiting task.
  a.call(BPF_FUNC_get_current_task);
  a.mov(3, 0);
  a.alui(BPF_ADD, 3, static_cast<std::int32_t>(task_flags));
  a.mov(1, 10);
  a.alui(BPF_ADD, 1, -24);
  a.movi(2, 4);
  a.call(BPF_FUNC_probe_read_kernel);
  a.ldx(BPF_W, 1, 10, -24);
  a.alui(BPF_AND, 1, pf_exiting | pf_io_worker | pf_kthread);
  a.jmp(BPF_JNE, 1, 0, out);
  a.movi(1, SIGSTOP);  // the closer stops before its next instruction (see the header)
  a.call(BPF_FUNC_send_signal_thread);
  a.label(out);
  a.movi(0, 0);
  a.exit();
  a.link();

  static char log[65536];
  static const char license[] = "Dual MIT/GPL";  // bpf_probe_read_kernel is GPL-only
  attr = {};
  attr.prog_type = BPF_PROG_TYPE_RAW_TRACEPOINT;
  attr.insns = reinterpret_cast<std::uint64_t>(a.code.data());
  attr.insn_cnt = static_cast<std::uint32_t>(a.code.size());
  attr.license = reinterpret_cast<std::uint64_t>(license);
  e->prog_fd_ = static_cast<int>(bpf(BPF_PROG_LOAD, attr));
  if (e->prog_fd_ < 0) {
    auto err = errno;
    attr.log_buf = reinterpret_cast<std::uint64_t>(log);
    attr.log_size = sizeof log;
    attr.log_level = 1;
    log[0] = 0;
    (void)bpf(BPF_PROG_LOAD, attr);
    errno = err;
    why_not = failed("bpf(BPF_PROG_LOAD)");
    if (std::getenv("CLOSECHECK_BPF_LOG")) why_not += std::string("\n") + log;
    return nullptr;
  }
  attr = {};
  static const char tracepoint[] = "inet_sock_set_state";
  attr.raw_tracepoint.name = reinterpret_cast<std::uint64_t>(tracepoint);
  attr.raw_tracepoint.prog_fd = static_cast<std::uint32_t>(e->prog_fd_);
  e->link_fd_ = static_cast<int>(bpf(BPF_RAW_TRACEPOINT_OPEN, attr));
  if (e->link_fd_ < 0) {
    why_not = failed("bpf(BPF_RAW_TRACEPOINT_OPEN inet_sock_set_state)");
    return nullptr;
  }
  return e;
}

CloseEvents::~CloseEvents() {
  for (int fd : {link_fd_, prog_fd_, ring_fd_, traced_fd_})
    if (fd >= 0) close(fd);
  if (consumer_) munmap(consumer_, page_);
  if (producer_) munmap(producer_, page_ + 2 * ring_size_);
}

void CloseEvents::watch(pid_t tgid, std::uint32_t interest) {
  auto key = static_cast<std::uint32_t>(tgid);
  bpf_attr attr{};
  attr.map_fd = static_cast<std::uint32_t>(traced_fd_);
  attr.key = reinterpret_cast<std::uint64_t>(&key);
  if (interest == 0) {
    (void)bpf(BPF_MAP_DELETE_ELEM, attr);
    return;
  }
  attr.value = reinterpret_cast<std::uint64_t>(&interest);
  attr.flags = BPF_ANY;
  (void)bpf(BPF_MAP_UPDATE_ELEM, attr);
}

std::vector<CloseEvents::Event> CloseEvents::drain() {
  std::vector<Event> out;
  auto* consumer = static_cast<std::uint64_t*>(consumer_);
  auto* producer = static_cast<const std::uint64_t*>(producer_);
  const auto* data = static_cast<const unsigned char*>(producer_) + page_;
  auto cons = __atomic_load_n(consumer, __ATOMIC_ACQUIRE);
  for (;;) {
    auto prod = __atomic_load_n(producer, __ATOMIC_ACQUIRE);
    if (cons >= prod) break;
    const auto* record = data + (cons & (ring_size_ - 1));
    auto header = __atomic_load_n(reinterpret_cast<const std::uint32_t*>(record), __ATOMIC_ACQUIRE);
    if (header & BPF_RINGBUF_BUSY_BIT) break;  // still being written
    std::uint32_t len = header & ~(BPF_RINGBUF_BUSY_BIT | BPF_RINGBUF_DISCARD_BIT);
    const auto* p = record + BPF_RINGBUF_HDR_SZ;
    if (!(header & BPF_RINGBUF_DISCARD_BIT) && len >= event_header + off_.head) {
      std::uint64_t pid_tgid, ns;
      std::uint32_t kind;
      std::memcpy(&pid_tgid, p, 8);
      std::memcpy(&kind, p + 8, 4);
      std::memcpy(&ns, p + 16, 8);
      const auto* sk = p + event_header;
      std::uint16_t family, dport, sport;
      std::memcpy(&family, sk + off_.family, 2);
      std::memcpy(&dport, sk + off_.dport, 2);
      std::memcpy(&sport, p + 12, 2);  // inet_sport, network order
      std::uint16_t num = ntohs(sport);
      Event ev;
      ev.kind = kind == Interest::listener_closes ? Kind::listener_closed : Kind::close_wait_closed;
      ev.tid = static_cast<pid_t>(pid_tgid & 0xffffffff);
      ev.tgid = static_cast<pid_t>(pid_tgid >> 32);
      ev.monotonic_ns = ns;
      ev.local_port = num;
      ev.peer_port = ntohs(dport);
      bool v6 = family == AF_INET6;
      ev.local = detail::format_inet(v6 ? AF_INET6 : AF_INET, sk + (v6 ? off_.v6_rcv_saddr : off_.rcv_saddr),
                                     htons(num));
      ev.peer = detail::format_inet(v6 ? AF_INET6 : AF_INET, sk + (v6 ? off_.v6_daddr : off_.daddr), dport);
      out.push_back(std::move(ev));
    }
    cons += (len + BPF_RINGBUF_HDR_SZ + 7) / 8 * 8;
    __atomic_store_n(consumer, cons, __ATOMIC_RELEASE);
  }
  return out;
}

}  // namespace closecheck::cli
