// Where an fd was opened: reads a process's open-site table (harness/sites/
// table.h, written by libclosecheck_sites.so) and symbolizes its stacks with
// elfutils' libdwfl, inlined calls included, the way `eu-addr2line -i` does.
// Works on this process and, with ptrace permission, on another one.
#include <cxxabi.h>
#include <dlfcn.h>
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fnmatch.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "../sites/table.h"
#include "closecheck/closecheck.hpp"
#include "closecheck/sites.hpp"
#include "format.hpp"

namespace closecheck {

namespace {

std::string demangle(const char* name) {
  if (!name) return {};
  int status = 0;
  std::unique_ptr<char, decltype(&std::free)> d(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                                 &std::free);
  return status == 0 && d ? std::string(d.get()) : std::string(name);
}

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// Where the table is in pid's memory; 0 if it has none. This process asks
// the recorder (once); another one's is found in /proc/PID/maps.
std::uintptr_t table_address(pid_t pid) {
  if (pid == getpid()) {
    using table_fn = void* (*)();
    static const auto own = reinterpret_cast<table_fn>(dlsym(RTLD_DEFAULT, "closecheck_sites_table"));
    return own ? reinterpret_cast<std::uintptr_t>(own()) : 0;
  }
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find("/memfd:" CLOSECHECK_SITES_NAME) != std::string::npos)
      return std::strtoull(line.c_str(), nullptr, 16);  // the first mapping is the header
  return 0;
}

bool read_memory(pid_t pid, std::uintptr_t address, void* out, std::size_t size) {
  if (pid == getpid()) {
    std::memcpy(out, reinterpret_cast<const void*>(address), size);
    return true;
  }
  iovec local{out, size};
  iovec remote{reinterpret_cast<void*>(address), size};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(size);
}

bool statically_linked(pid_t pid) {
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  for (std::string line; std::getline(maps, line);)
    if (line.find("/ld-linux") != std::string::npos || line.find("/ld64.so") != std::string::npos)
      return false;
  return true;
}

// libdwfl over one process's mappings; made on first use.
class Symbolizer {
 public:
  // cache: the frames of each address looked up, kept by the caller (this
  // process's across calls: its libraries' addresses do not move). A
  // symbolizer holds the ELF files it reads open until it is destroyed.
  using Cache = std::map<std::uint64_t, std::vector<Frame>>;
  explicit Symbolizer(pid_t pid, Cache* cache = nullptr) : pid_(pid), cache_(cache ? cache : &own_) {}
  ~Symbolizer() {
    if (dwfl_) dwfl_end(dwfl_);
  }
  Symbolizer(const Symbolizer&) = delete;
  Symbolizer& operator=(const Symbolizer&) = delete;

  // One return address becomes one frame, or several when calls were inlined
  // there (the innermost first). Each address is looked up once.
  void frames(std::uint64_t pc, std::vector<Frame>& out) {
    auto it = cache_->find(pc);
    if (it == cache_->end()) {
      std::vector<Frame> found;
      lookup(pc, found);
      // An address in no module: a library loaded since; look again next time.
      if (found.size() == 1 && found[0].module.empty() && dwfl_) {
        dwfl_end(dwfl_);
        dwfl_ = nullptr;
        tried_ = false;
        out.insert(out.end(), found.begin(), found.end());
        return;
      }
      it = cache_->emplace(pc, std::move(found)).first;
    }
    out.insert(out.end(), it->second.begin(), it->second.end());
  }

 private:
  void lookup(std::uint64_t pc, std::vector<Frame>& out) {
    Frame base;
    base.pc = pc;
    if (!ready()) {
      out.push_back(base);
      return;
    }
    Dwarf_Addr at = pc - 1;  // inside the call instruction, not after it
    Dwfl_Module* module = dwfl_addrmodule(dwfl_, at);
    if (!module) {
      out.push_back(base);
      return;
    }
    Dwarf_Addr start = 0;
    const char* path = dwfl_module_info(module, nullptr, &start, nullptr, nullptr, nullptr, nullptr, nullptr);
    base.module = path ? path : "";
    base.offset = at + 1 - start;
    GElf_Off offset = 0;
    GElf_Sym sym;
    base.function = demangle(dwfl_module_addrinfo(module, at, &offset, &sym, nullptr, nullptr, nullptr));
    if (Dwfl_Line* line = dwfl_module_getsrc(module, at)) {
      int number = 0;
      if (const char* file = dwfl_lineinfo(line, nullptr, &number, nullptr, nullptr, nullptr)) {
        base.file = file;
        base.line = number;
      }
    }
    Dwarf_Addr bias = 0;
    Dwarf_Die* cu = dwfl_module_addrdie(module, at, &bias);
    Dwarf_Die* scopes = nullptr;
    int n = cu ? dwarf_getscopes(cu, at - bias, &scopes) : 0;
    if (n > 0) {
      // dwarf_getscopes continues an inlined subroutine with its abstract
      // origin's scopes; the callers are the innermost scope's physical parents.
      Dwarf_Die innermost = scopes[0];
      std::free(scopes);
      scopes = nullptr;
      n = dwarf_getscopes_die(&innermost, &scopes);
    }
    // Innermost scope first: each inlined subroutine is a frame at the
    // current location, and its call site is the location of the next one.
    std::string file = base.file;
    int line = base.line;
    Dwarf_Files* files = nullptr;
    bool pushed = false;
    for (int i = 0; i < n; ++i) {
      int tag = dwarf_tag(&scopes[i]);
      if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
      Frame f = base;
      // The symbol names the function the code is in; DWARF names the inlined ones.
      if (tag == DW_TAG_inlined_subroutine || base.function.empty())
        f.function = die_name(&scopes[i], base.function);
      f.file = file;
      f.line = line;
      f.inlined = tag == DW_TAG_inlined_subroutine;
      out.push_back(f);
      pushed = true;
      if (tag == DW_TAG_subprogram) break;
      Dwarf_Attribute attr;
      Dwarf_Word call_file = 0, call_line = 0;
      if (dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_file, &attr), &call_file) == 0 &&
          (files || dwarf_getsrcfiles(cu, &files, nullptr) == 0))
        if (const char* name = dwarf_filesrc(files, call_file, nullptr, nullptr)) file = name;
      line = dwarf_formudata(dwarf_attr(&scopes[i], DW_AT_call_line, &attr), &call_line) == 0
                 ? static_cast<int>(call_line)
                 : 0;
    }
    std::free(scopes);
    if (!pushed) out.push_back(base);
  }

  bool ready() {
    if (tried_) return dwfl_ != nullptr;
    tried_ = true;
    static char* debuginfo_path = nullptr;
    static const Dwfl_Callbacks callbacks = {dwfl_linux_proc_find_elf, dwfl_standard_find_debuginfo,
                                             nullptr, &debuginfo_path};
    dwfl_ = dwfl_begin(&callbacks);
    if (!dwfl_) return false;
    dwfl_report_begin(dwfl_);
    if (dwfl_linux_proc_report(dwfl_, pid_) != 0 || dwfl_report_end(dwfl_, nullptr, nullptr) != 0) {
      dwfl_end(dwfl_);
      dwfl_ = nullptr;
    }
    return dwfl_ != nullptr;
  }

  static std::string die_name(Dwarf_Die* die, const std::string& fallback) {
    Dwarf_Attribute attr;
    const char* linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    if (!linkage) linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
    if (linkage) return demangle(linkage);
    if (const char* name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr))) return name;
    return fallback;
  }

  pid_t pid_;
  Dwfl* dwfl_ = nullptr;
  bool tried_ = false;
  Cache* cache_;
  Cache own_;
};

// Frames of the recorder, libc, the dynamic loader and the sanitizers'
// interceptors are how the call got here, not where the program made it.
bool plumbing(const Frame& f) {
  auto name = basename_of(f.module);
  for (const char* prefix : {"libclosecheck_sites", "libc.so", "ld-linux", "libasan", "libtsan",
                             "libubsan", "libpthread"})
    if (name.starts_with(prefix)) return true;
  return false;
}

OpenSite symbolize(Symbolizer& symbols, const closecheck_stack& stack) {
  OpenSite site;
  std::vector<Frame> all;
  for (std::uint32_t i = 0; i < stack.depth && i < CLOSECHECK_SITES_FRAMES; ++i)
    symbols.frames(stack.pc[i], all);
  std::size_t first = 0;
  while (first < all.size() && plumbing(all[first])) ++first;
  site.frames.assign(all.begin() + static_cast<std::ptrdiff_t>(first), all.end());
  if (site.frames.empty()) {
    site.unknown = "no frames outside libc";
    return site;
  }
  // The site: the first frame in the program's own code (source known, not
  // a system header or library, not the harness); else the first frame.
  for (std::size_t i = 0; i < site.frames.size(); ++i) {
    const auto& f = site.frames[i];
    if (!f.file.empty() && !f.file.starts_with("/usr/") && !f.function.starts_with("closecheck::") &&
        !plumbing(f)) {
      site.site = i;
      return site;
    }
  }
  // No frame of the program's own code has a source file: say why, for the
  // first frame outside libc.
  for (std::size_t i = 0; i < site.frames.size(); ++i)
    if (!plumbing(site.frames[i])) {
      site.site = i;
      break;
    }
  const auto& f = site.frames[site.site];
  site.note = f.function.empty() ? "no symbols: " + basename_of(f.module) + " is stripped"
              : f.file.empty()   ? "no debug info in " + basename_of(f.module) + ": build with -g for file:line"
                                 : "";
  return site;
}

// The start time of pid (field 22 of /proc/PID/stat): with the pid, it names
// one process, even after the pid is reused.
std::string started(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
  }
  return field;
}

// Another process's symbolizer, kept for as long as the same process is
// asked about: `closecheck run` finds all of a process's fds at its exit,
// and one libdwfl session then reads its libraries' debug info once.
Symbolizer& other_process(pid_t pid) {
  static std::unique_ptr<Symbolizer> last;
  static pid_t last_pid = 0;
  static std::string last_start;
  auto start = started(pid);
  if (!last || last_pid != pid || last_start != start) {
    last = std::make_unique<Symbolizer>(pid);
    last_pid = pid;
    last_start = start;
  }
  return *last;
}

// The table's header and the slots of the given fd numbers, from pid's memory.
struct Table {
  std::uintptr_t address = 0;
  closecheck_sites_header header{};
  std::string why;  // empty when read
  bool read_slot(pid_t pid, int fd, closecheck_slot& slot) const {
    if (fd < 0 || static_cast<unsigned>(fd) >= header.capacity) return false;
    return read_memory(pid, address + closecheck_sites_slots_offset() + fd * sizeof(closecheck_slot),
                       &slot, sizeof slot);
  }
};

Table read_table(pid_t pid) {
  Table t;
  t.address = table_address(pid);
  if (!t.address) {
    t.why = statically_linked(pid)
                ? "statically linked: closecheck's recorder cannot be preloaded into it"
                : "not recorded: libclosecheck_sites.so is not loaded (CLOSECHECK_SITES=off, "
                  "LD_PRELOAD cleared, or a setuid program)";
    return t;
  }
  if (!read_memory(pid, t.address, &t.header, sizeof t.header) ||
      t.header.magic != CLOSECHECK_SITES_MAGIC || t.header.version != CLOSECHECK_SITES_VERSION) {
    t.why = "the open-site table could not be read";
    t.address = 0;
  }
  return t;
}

bool same_object(const closecheck_slot& slot, const Fd& fd) {
  return slot.open.device == static_cast<std::uint64_t>(fd.device) &&
         slot.open.inode == static_cast<std::uint64_t>(fd.inode);
}

bool current(const closecheck_slot& slot, const Fd& fd) {
  return slot.open.seq > slot.close.seq && same_object(slot, fd);
}

bool frame_matches(const std::string& pattern, const Frame& f) {
  auto m = [&](const std::string& text) {
    return !text.empty() && fnmatch(pattern.c_str(), text.c_str(), 0) == 0;
  };
  return m(f.function) || m(f.file) || m(f.module) || m(f.where());
}

}  // namespace

std::string Frame::where() const {
  std::string s;
  if (!file.empty()) {
    s = file + ":" + std::to_string(line);
  } else {
    char hex[32];
    std::snprintf(hex, sizeof hex, "+0x%llx", static_cast<unsigned long long>(offset));
    s = (module.empty() ? std::string("??") : basename_of(module)) + (module.empty() ? "" : hex);
  }
  if (!function.empty()) s += " " + function;
  if (inlined) s += " (inlined)";
  return s;
}

std::vector<int> recorder_fds(pid_t pid) {
  if (!pid) pid = getpid();
  auto table = read_table(pid);
  std::vector<int> out;
  for (std::uint32_t i = 0; table.address && i < table.header.own_count && i < 4; ++i)
    out.push_back(table.header.own_fds[i]);
  return out;
}

bool recording_open_sites(pid_t pid) { return table_address(pid ? pid : getpid()) != 0; }

void find_open_sites(std::vector<Fd>& fds, pid_t pid, bool closed_too) {
  if (fds.empty()) return;
  const bool self = !pid || pid == getpid();
  if (self) pid = getpid();
  auto table = read_table(pid);
  if (!table.address && self) return;  // not recording here: nothing to say
  // This process's sites by the seq of their open (settling asks again and
  // again), from one symbolizer that remembers every address it looked up.
  static std::mutex cache_mutex;
  static std::map<std::uint64_t, OpenSite> cache;
  static Symbolizer::Cache frames_cache;
  static pid_t cache_pid = 0;
  std::optional<Symbolizer> symbols;
  for (auto& fd : fds) {
    fd.opened = {};
    closecheck_slot slot;
    if (!table.address) {
      fd.opened.unknown = table.why;
    } else if (!table.read_slot(pid, fd.number, slot)) {
      fd.opened.unknown = "fd beyond the open-site table (CLOSECHECK_SITES_CAPACITY)";
    } else if (!current(slot, fd) && !(closed_too && slot.open.seq && same_object(slot, fd))) {
      fd.opened.unknown = "not opened through a call closecheck records (inherited, a raw system "
                          "call, or a call libc made to itself)";
    } else if (self) {
      std::lock_guard lock(cache_mutex);
      auto it = cache.find(slot.open.seq);
      if (it == cache.end()) {
        if (cache_pid != pid) {  // a fork's child: start again (its parent may load other libraries)
          cache.clear();
          frames_cache.clear();
          cache_pid = pid;
        }
        if (!symbols) symbols.emplace(pid, &frames_cache);
        it = cache.emplace(slot.open.seq, symbolize(*symbols, slot.open)).first;
      }
      fd.opened = it->second;
    } else {
      fd.opened = symbolize(other_process(pid), slot.open);
    }
  }
}

std::vector<BadClose> bad_closes(std::uint64_t* seen, pid_t pid) {
  std::vector<BadClose> out;
  if (!pid) pid = getpid();
  std::uint64_t from = seen ? *seen : 0;
  std::uint64_t count = 0;
  auto address = table_address(pid);
  if (!address || !read_memory(pid, address + offsetof(closecheck_sites_header, bad_close_count),
                               &count, sizeof count))
    return out;
  if (seen) *seen = count;
  if (count <= from) return out;
  auto table = read_table(pid);
  if (!table.address) return out;
  Symbolizer own(pid);
  Symbolizer& symbols = pid == getpid() ? own : other_process(pid);
  for (std::uint64_t i = from; i < count && i < CLOSECHECK_SITES_BAD_CLOSES; ++i) {
    const auto& b = table.header.bad[i];
    BadClose bc;
    bc.fd = b.fd;
    bc.closed_now = symbolize(symbols, b.now);
    if (b.previous.seq) bc.closed_before = symbolize(symbols, b.previous);
    if (b.opened.seq) bc.opened = symbolize(symbols, b.opened);
    out.push_back(std::move(bc));
  }
  if (count > CLOSECHECK_SITES_BAD_CLOSES && from < count) {
    BadClose more;
    more.fd = -1;
    more.more = count - std::max<std::uint64_t>(from, CLOSECHECK_SITES_BAD_CLOSES);
    if (more.more) out.push_back(std::move(more));
  }
  return out;
}

std::vector<BadClose> take_bad_closes() {
  static std::mutex mutex;
  static std::uint64_t taken = 0;
  std::lock_guard lock(mutex);
  return bad_closes(&taken);
}

std::string site_lines(const OpenSite& site, const char* verb, std::size_t frames) {
  if (!site.known()) return site.unknown.empty() ? "" : std::string("    ") + verb + " at: unknown (" + site.unknown + ")\n";
  std::string s = std::string("    ") + verb + " at " + site.frames[site.site].where() + "\n";
  // The callers, up to the test framework or the C runtime.
  std::size_t shown = 0;
  for (std::size_t i = site.site + 1; i < site.frames.size() && shown < frames; ++i) {
    const auto& f = site.frames[i];
    if (f.function.starts_with("testing::") || f.function.find(" testing::") != std::string::npos ||
        f.function == "_start" || plumbing(f))
      break;
    s += "      from " + f.where() + "\n";
    ++shown;
  }
  if (!site.note.empty()) s += "      (" + site.note + ")\n";
  return s;
}

std::string describe(const BadClose& b, std::size_t frames) {
  if (b.fd < 0) return "and " + std::to_string(b.more) + " more closes of fds that were not open\n";
  std::string s = "close(" + std::to_string(b.fd) + ") of an fd that was not open" +
                  (b.closed_before.known() ? ": closed twice\n" : "\n");
  s += site_lines(b.closed_now, "closed again", frames);
  s += site_lines(b.closed_before, "first closed", frames);
  s += site_lines(b.opened, "opened", frames);
  return s;
}

Predicate ignore_opened_in(std::string pattern) {
  return [p = std::move(pattern)](const Fd& fd) {
    return std::any_of(fd.opened.frames.begin(), fd.opened.frames.end(),
                       [&](const Frame& f) { return frame_matches(p, f); });
  };
}

std::string detail::frames_json(const OpenSite& site) {
  std::string s = "{\"site\":";
  s += site.known() ? json_string(site.frames[site.site].where()) : std::string("null");
  if (!site.unknown.empty()) s += ",\"unknown\":" + json_string(site.unknown);
  if (!site.note.empty()) s += ",\"note\":" + json_string(site.note);
  s += ",\"frames\":[";
  for (std::size_t i = 0; i < site.frames.size(); ++i) {
    const auto& f = site.frames[i];
    char pc[32];
    std::snprintf(pc, sizeof pc, "0x%llx", static_cast<unsigned long long>(f.pc));
    if (i) s += ",";
    s += "{\"pc\":\"" + std::string(pc) + "\",\"module\":" + json_string(f.module) +
         ",\"function\":" + json_string(f.function) + ",\"file\":" + json_string(f.file) +
         ",\"line\":" + std::to_string(f.line) + (f.inlined ? ",\"inlined\":true" : "") + "}";
  }
  return s + "]}";
}

}  // namespace closecheck
