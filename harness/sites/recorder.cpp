// libclosecheck_sites.so: records where every fd is opened and closed.
//
// It defines the libc functions that create or close descriptors, calls the
// real one (dlsym RTLD_NEXT), and writes the caller's stack into this
// process's open-site table (table.h). Loaded before libc, by linking it
// (closecheck::gtest_main does) or with LD_PRELOAD (`closecheck run` does),
// it sees the calls made from the program, from header-only libraries and
// from shared libraries (OpenSSL, libwebsockets) alike. Calls that libc makes
// to itself (getaddrinfo's socket, say) do not pass through here.
//
// A close(2) that fails with EBADF on a number this process had used is a
// double close (or a close of someone else's fd that was closed first): it is
// kept with the stacks of both closes and of the open.
//
// Unwinding is libunwind's unw_backtrace (about 10 ns a frame, with its cache)
// from libunwind.so.8, opened RTLD_LOCAL so that its _Unwind_* entry points do
// not replace libgcc's for C++ exceptions; without it, glibc's backtrace().
// CLOSECHECK_SITES=off turns recording off.
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "table.h"

namespace {

closecheck_sites_header* table = nullptr;
closecheck_slot* slots = nullptr;
using backtrace_fn = int (*)(void**, int);
backtrace_fn unwind = nullptr;
uintptr_t own_lo = 0, own_hi = 0;  // this library's code: not part of a site
// Set while recording: what the unwinder or dlopen opens is not the program's.
__thread bool busy __attribute__((tls_model("initial-exec")));

template <class F>
F next(const char* name) {
  return reinterpret_cast<F>(dlsym(RTLD_NEXT, name));
}
#define REAL(name) static const auto real = next<decltype(&::name)>(#name)

bool recording() { return table && !busy; }

// libunwind blocks every signal around each of its locked sections (a
// sigprocmask(2) before and after): on a frame it has not cached yet, 6 to 10
// system calls per stack, 1,100 of them in one `git status`, and most of what
// a short-lived process paid for its open sites. While a thread's unwinds miss
// (the first stacks of a process, or of a new code path), the recorder blocks
// the signals itself, once around the whole unwind, and libunwind's own calls
// (sigprocmask below) change nothing: a signal handler still cannot run while
// libunwind holds a lock, and the stack costs 2 system calls. After 16 unwinds
// in a row that made at most one locked section each, the next ones run as
// libunwind alone would (a stack found in its cache makes no system call at
// all) until one misses again.
using sigprocmask_fn = int (*)(int, const sigset_t*, sigset_t*);
sigprocmask_fn real_sigprocmask = nullptr;
__thread bool masked __attribute__((tls_model("initial-exec")));       // signals blocked by the recorder
// Unwinds left to block around: 16 after one that missed.
__thread unsigned cold __attribute__((tls_model("initial-exec"))) = 16;
__thread unsigned mask_calls __attribute__((tls_model("initial-exec")));  // libunwind's, this unwind

int unwind_stack(void** pcs, int size) {
  if (!real_sigprocmask) return unwind(pcs, size);
  sigset_t all, saved;
  bool block = cold > 0;
  if (block) {
    sigfillset(&all);
    block = real_sigprocmask(SIG_SETMASK, &all, &saved) == 0;
  }
  mask_calls = 0;
  masked = block;
  int n = unwind(pcs, size);
  masked = false;
  if (block) real_sigprocmask(SIG_SETMASK, &saved, nullptr);
  if (mask_calls > 2)
    cold = 16;
  else if (cold)
    --cold;
  return n;
}

void capture(closecheck_stack& s) {
  void* pcs[CLOSECHECK_SITES_FRAMES + 8];
  int n = unwind_stack(pcs, CLOSECHECK_SITES_FRAMES + 8);
  int first = 0;
  while (first < n && reinterpret_cast<uintptr_t>(pcs[first]) >= own_lo &&
         reinterpret_cast<uintptr_t>(pcs[first]) < own_hi)
    ++first;
  s.depth = 0;
  for (int i = first; i < n && s.depth < CLOSECHECK_SITES_FRAMES; ++i)
    s.pc[s.depth++] = reinterpret_cast<uint64_t>(pcs[i]);
  s.tid = static_cast<int32_t>(syscall(SYS_gettid));
}

uint64_t next_seq() { return __atomic_add_fetch(&table->seq, 1, __ATOMIC_RELAXED); }

bool in_table(int fd) { return fd >= 0 && static_cast<unsigned>(fd) < table->capacity; }

// fds opened while the recorder starts (libunwind's pipe): its own.
bool starting = false;
int own_fds[4];
unsigned own_count = 0;

// Moves an fd the recorder opens for itself (libunwind's pipe, refused it,
// makes every unwind 10x slower) out of the numbers a program uses first: a
// program that expects its first socket to be fd 3 still gets 3. Not far up:
// listing /proc/self/fd costs as much as the highest number open.
int move_up(int fd) {
  int high = static_cast<int>(syscall(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 64));
  if (high < 0) return fd;
  syscall(SYS_close, fd);
  return high;
}

// After a call that returned a new fd.
void opened(int fd) {
  if (starting && fd >= 0 && own_count < 4) own_fds[own_count++] = fd;
  if (!recording() || !in_table(fd)) return;
  busy = true;
  int saved = errno;
  closecheck_stack s;
  capture(s);
  struct stat st;
  if (fstat(fd, &st) == 0) {
    s.device = st.st_dev;
    s.inode = st.st_ino;
  } else {
    s.device = s.inode = 0;
  }
  s.seq = next_seq();  // after the call: above any close that freed the number
  slots[fd].open = s;
  errno = saved;
  busy = false;
}

// Around a call that closes fd: the stack and seq are taken before the call
// (so that an open of the same number in another thread right after it sorts
// later), then the outcome is recorded.
struct Closing {
  int fd;
  bool on = false;
  closecheck_stack s;
  explicit Closing(int number) : fd(number) {
    if (!recording() || !in_table(fd)) return;
    on = true;
    busy = true;
    capture(s);
    s.device = s.inode = 0;
    s.seq = next_seq();
  }
  // ok: the call closed it. bad: it failed because fd was not open.
  void done(bool ok, bool bad) {
    if (!on) return;
    int saved = errno;
    auto& slot = slots[fd];
    if (ok) {
      slot.close = s;
    } else if (bad && (slot.open.seq || slot.close.seq)) {  // a number this process used
      auto n = __atomic_fetch_add(&table->bad_close_count, 1, __ATOMIC_RELAXED);
      if (n < CLOSECHECK_SITES_BAD_CLOSES) {
        auto& b = table->bad[n];
        b.fd = fd;
        b.now = s;
        b.previous = slot.close;
        b.opened = slot.open;
      }
    }
    errno = saved;
    busy = false;
  }
};

void closed_range(unsigned first, unsigned last) {
  if (!recording()) return;
  busy = true;
  closecheck_stack s;
  capture(s);
  s.device = s.inode = 0;
  s.seq = next_seq();
  for (unsigned fd = first; fd <= last && fd < table->capacity; ++fd)
    if (slots[fd].open.seq > slots[fd].close.seq) slots[fd].close = s;
  busy = false;
}

int unw_fallback(void** pcs, int n) { return backtrace(pcs, n); }

__attribute__((constructor(101))) void init() {
  const char* off = getenv("CLOSECHECK_SITES");
  if (off && strcmp(off, "off") == 0) return;
  // Not under ThreadSanitizer: libunwind's thread-exit destructor takes a
  // mutex after TSan has let go of the thread (a crash), and glibc's unwinder
  // there made TSan report races on fds. A TSan build runs without open sites.
  if (dlsym(RTLD_DEFAULT, "__tsan_init")) return;
  busy = true;
  starting = true;
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&init), &info) && info.dli_fbase) {
    auto base = reinterpret_cast<uintptr_t>(info.dli_fbase);
    dl_iterate_phdr(
        [](dl_phdr_info* i, size_t, void* data) {
          auto base = *static_cast<uintptr_t*>(data);
          if (i->dlpi_addr != base) return 0;
          for (int k = 0; k < i->dlpi_phnum; ++k)
            if (i->dlpi_phdr[k].p_type == PT_LOAD && (i->dlpi_phdr[k].p_flags & PF_X)) {
              own_lo = i->dlpi_addr + i->dlpi_phdr[k].p_vaddr;
              own_hi = own_lo + i->dlpi_phdr[k].p_memsz;
            }
          return 1;
        },
        &base);
  }
  if (void* lib = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL)) {
      unwind = reinterpret_cast<backtrace_fn>(dlsym(lib, "unw_backtrace"));
      // A cache per thread, not one behind a lock: a child forked while another
      // thread unwinds must not find that lock taken (its close would hang).
#if defined(__x86_64__)
      using policy_fn = int (*)(void*, int);
      auto policy = reinterpret_cast<policy_fn>(dlsym(lib, "_ULx86_64_set_caching_policy"));
      void* space = dlsym(lib, "_ULx86_64_local_addr_space");
      if (policy && space) policy(*static_cast<void**>(space), 2 /* UNW_CACHE_PER_THREAD */);
#endif
    }
  if (!unwind) unwind = unw_fallback;
  real_sigprocmask = next<sigprocmask_fn>("sigprocmask");
  void* prime[4];
  unwind_stack(prime, 4);  // the first unwind loads what it needs (libgcc_s for backtrace())
  starting = false;
  unsigned kept = 0;  // those still open
  for (unsigned i = 0; i < own_count; ++i)
    if (fcntl(own_fds[i], F_GETFD) != -1) own_fds[kept++] = own_fds[i];
  own_count = kept;

  unsigned capacity = 1u << 16;
  if (const char* c = getenv("CLOSECHECK_SITES_CAPACITY")) capacity = static_cast<unsigned>(atoi(c));
  if (capacity == 0) capacity = 1u << 16;
  uint64_t size = closecheck_sites_slots_offset() + uint64_t{capacity} * sizeof(closecheck_slot);
  int fd = static_cast<int>(syscall(SYS_memfd_create, CLOSECHECK_SITES_NAME, MFD_CLOEXEC));
  if (fd < 0) {
    busy = false;
    return;
  }
  void* map = MAP_FAILED;
  if (syscall(SYS_ftruncate, fd, size) == 0)
    map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  syscall(SYS_close, fd);
  if (map != MAP_FAILED) {
    auto* h = static_cast<closecheck_sites_header*>(map);
    h->magic = CLOSECHECK_SITES_MAGIC;
    h->version = CLOSECHECK_SITES_VERSION;
    h->capacity = capacity;
    for (unsigned i = 0; i < own_count; ++i) h->own_fds[i] = own_fds[i];
    h->own_count = own_count;
    slots = reinterpret_cast<closecheck_slot*>(static_cast<char*>(map) +
                                               closecheck_sites_slots_offset());
    __atomic_store_n(&table, h, __ATOMIC_RELEASE);
  }
  busy = false;
}

int open_mode(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? va_arg(ap, int) : 0;
}

}  // namespace

extern "C" {

// For the harness in the same process (found with dlsym, so that a program
// without this library still links): the table, or null when not recording.
__attribute__((visibility("default"))) closecheck_sites_header* closecheck_sites_table(void) {
  return table;
}

#define CC_EXPORT __attribute__((visibility("default")))

CC_EXPORT int socket(int domain, int type, int protocol) {
  REAL(socket);
  int fd = real(domain, type, protocol);
  opened(fd);
  return fd;
}
CC_EXPORT int socketpair(int domain, int type, int protocol, int sv[2]) {
  REAL(socketpair);
  int r = real(domain, type, protocol, sv);
  if (r == 0) {
    opened(sv[0]);
    opened(sv[1]);
  }
  return r;
}
CC_EXPORT int accept(int s, sockaddr* a, socklen_t* l) {
  REAL(accept);
  int fd = real(s, a, l);
  opened(fd);
  return fd;
}
CC_EXPORT int accept4(int s, sockaddr* a, socklen_t* l, int flags) {
  REAL(accept4);
  int fd = real(s, a, l, flags);
  opened(fd);
  return fd;
}
CC_EXPORT ssize_t recvmsg(int s, msghdr* m, int flags) {
  REAL(recvmsg);
  ssize_t r = real(s, m, flags);
  if (r >= 0 && recording() && m->msg_control)
    for (cmsghdr* c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
        auto n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; ++i) {
          int fd;
          memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
          opened(fd);
        }
      }
  return r;
}

#define CC_OPEN(name, ...)                              \
  CC_EXPORT int name(const char* path, int flags, ...) { \
    REAL(name);                                          \
    va_list ap;                                          \
    va_start(ap, flags);                                 \
    int mode = open_mode(flags, ap);                     \
    va_end(ap);                                          \
    int fd = real(path, flags, mode);                    \
    opened(fd);                                          \
    return fd;                                           \
  }
CC_OPEN(open)
CC_OPEN(open64)
#define CC_OPENAT(name)                                            \
  CC_EXPORT int name(int dir, const char* path, int flags, ...) {  \
    REAL(name);                                                    \
    va_list ap;                                                    \
    va_start(ap, flags);                                           \
    int mode = open_mode(flags, ap);                               \
    va_end(ap);                                                    \
    int fd = real(dir, path, flags, mode);                         \
    opened(fd);                                                    \
    return fd;                                                     \
  }
CC_OPENAT(openat)
CC_OPENAT(openat64)
// _FORTIFY_SOURCE's checked entry points.
CC_EXPORT int __open_2(const char* path, int flags) {
  static const auto real = next<int (*)(const char*, int)>("__open_2");
  int fd = real(path, flags);
  opened(fd);
  return fd;
}
CC_EXPORT int __open64_2(const char* path, int flags) {
  static const auto real = next<int (*)(const char*, int)>("__open64_2");
  int fd = real(path, flags);
  opened(fd);
  return fd;
}
CC_EXPORT int __openat_2(int dir, const char* path, int flags) {
  static const auto real = next<int (*)(int, const char*, int)>("__openat_2");
  int fd = real(dir, path, flags);
  opened(fd);
  return fd;
}
CC_EXPORT int __openat64_2(int dir, const char* path, int flags) {
  static const auto real = next<int (*)(int, const char*, int)>("__openat64_2");
  int fd = real(dir, path, flags);
  opened(fd);
  return fd;
}
CC_EXPORT int creat(const char* path, mode_t mode) {
  REAL(creat);
  int fd = real(path, mode);
  opened(fd);
  return fd;
}
CC_EXPORT int creat64(const char* path, mode_t mode) {
  REAL(creat64);
  int fd = real(path, mode);
  opened(fd);
  return fd;
}
CC_EXPORT int pipe(int p[2]) {
  REAL(pipe);
  int r = real(p);
  if (r == 0) {
    opened(p[0]);
    opened(p[1]);
  }
  return r;
}
CC_EXPORT int pipe2(int p[2], int flags) {
  REAL(pipe2);
  int r = real(p, flags);
  if (r == 0 && starting) {  // libunwind's memory-validation pipe
    p[0] = move_up(p[0]);
    p[1] = move_up(p[1]);
  }
  if (r == 0) {
    opened(p[0]);
    opened(p[1]);
  }
  return r;
}
CC_EXPORT int dup(int fd) {
  REAL(dup);
  int r = real(fd);
  opened(r);
  return r;
}
CC_EXPORT int dup2(int from, int to) {
  REAL(dup2);
  int r = real(from, to);
  if (r >= 0 && from != to) opened(r);
  return r;
}
CC_EXPORT int dup3(int from, int to, int flags) {
  REAL(dup3);
  int r = real(from, to, flags);
  opened(r);
  return r;
}
#define CC_FCNTL(name)                                     \
  CC_EXPORT int name(int fd, int cmd, ...) {               \
    REAL(name);                                            \
    va_list ap;                                            \
    va_start(ap, cmd);                                     \
    void* arg = va_arg(ap, void*);                         \
    va_end(ap);                                            \
    int r = real(fd, cmd, arg);                            \
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) opened(r); \
    return r;                                              \
  }
CC_FCNTL(fcntl)
CC_FCNTL(fcntl64)
CC_EXPORT int epoll_create(int size) {
  REAL(epoll_create);
  int fd = real(size);
  opened(fd);
  return fd;
}
CC_EXPORT int epoll_create1(int flags) {
  REAL(epoll_create1);
  int fd = real(flags);
  opened(fd);
  return fd;
}
CC_EXPORT int eventfd(unsigned int value, int flags) {
  REAL(eventfd);
  int fd = real(value, flags);
  opened(fd);
  return fd;
}
CC_EXPORT int timerfd_create(int clock, int flags) {
  REAL(timerfd_create);
  int fd = real(clock, flags);
  opened(fd);
  return fd;
}
CC_EXPORT int signalfd(int fd, const sigset_t* mask, int flags) {
  REAL(signalfd);
  int r = real(fd, mask, flags);
  if (fd == -1) opened(r);
  return r;
}
CC_EXPORT int inotify_init(void) {
  REAL(inotify_init);
  int fd = real();
  opened(fd);
  return fd;
}
CC_EXPORT int inotify_init1(int flags) {
  REAL(inotify_init1);
  int fd = real(flags);
  opened(fd);
  return fd;
}
CC_EXPORT int memfd_create(const char* name, unsigned int flags) {
  REAL(memfd_create);
  int fd = real(name, flags);
  opened(fd);
  return fd;
}
CC_EXPORT int pidfd_open(pid_t pid, unsigned int flags) {
  static const auto real = next<int (*)(pid_t, unsigned int)>("pidfd_open");
  int fd = real ? real(pid, flags) : static_cast<int>(syscall(SYS_pidfd_open, pid, flags));
  opened(fd);
  return fd;
}
CC_EXPORT int mkstemp(char* t) {
  REAL(mkstemp);
  int fd = real(t);
  opened(fd);
  return fd;
}
CC_EXPORT int mkostemp(char* t, int flags) {
  REAL(mkostemp);
  int fd = real(t, flags);
  opened(fd);
  return fd;
}
CC_EXPORT FILE* fopen(const char* path, const char* mode) {
  REAL(fopen);
  FILE* f = real(path, mode);
  if (f) opened(fileno(f));
  return f;
}
CC_EXPORT FILE* fopen64(const char* path, const char* mode) {
  REAL(fopen64);
  FILE* f = real(path, mode);
  if (f) opened(fileno(f));
  return f;
}
CC_EXPORT FILE* tmpfile(void) {
  REAL(tmpfile);
  FILE* f = real();
  if (f) opened(fileno(f));
  return f;
}
CC_EXPORT FILE* popen(const char* command, const char* type) {
  REAL(popen);
  FILE* f = real(command, type);
  if (f) opened(fileno(f));
  return f;
}
CC_EXPORT DIR* opendir(const char* path) {
  REAL(opendir);
  DIR* d = real(path);
  if (d) opened(dirfd(d));
  return d;
}

// libunwind's (see unwind_stack): while the recorder has blocked every signal
// around an unwind, nothing else runs on this thread, and libunwind's own
// block and restore leave the mask as it is.
CC_EXPORT int sigprocmask(int how, const sigset_t* set, sigset_t* old) {
  ++mask_calls;
  if (masked) {
    if (old) sigfillset(old);
    return 0;
  }
  if (!real_sigprocmask) real_sigprocmask = next<sigprocmask_fn>("sigprocmask");
  return real_sigprocmask(how, set, old);
}

CC_EXPORT int close(int fd) {
  REAL(close);
  Closing c(fd);
  int r = real(fd);
  c.done(r == 0 || errno != EBADF, r != 0 && errno == EBADF);
  return r;
}
CC_EXPORT int fclose(FILE* f) {
  REAL(fclose);
  Closing c(f ? fileno(f) : -1);
  int r = real(f);
  c.done(r == 0 || errno != EBADF, r != 0 && errno == EBADF);
  return r;
}
CC_EXPORT int pclose(FILE* f) {
  REAL(pclose);
  Closing c(f ? fileno(f) : -1);
  int r = real(f);
  c.done(r != -1 || errno != EBADF, false);
  return r;
}
CC_EXPORT int closedir(DIR* d) {
  REAL(closedir);
  Closing c(dirfd(d));
  int r = real(d);
  c.done(r == 0, false);
  return r;
}
CC_EXPORT int close_range(unsigned first, unsigned last, int flags) {
  static const auto real = next<int (*)(unsigned, unsigned, int)>("close_range");
  int r = real ? real(first, last, flags)
               : static_cast<int>(syscall(SYS_close_range, first, last, flags));
  if (r == 0 && !(flags & CLOSE_RANGE_CLOEXEC)) closed_range(first, last);
  return r;
}
CC_EXPORT void closefrom(int first) {
  static const auto real = next<void (*)(int)>("closefrom");
  if (real)
    real(first);
  else
    syscall(SYS_close_range, first, ~0u, 0);
  if (first >= 0) closed_range(static_cast<unsigned>(first), ~0u);
}

}  // extern "C"
