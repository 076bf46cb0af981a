// Suppressions files and the inline CLOSECHECK_SUPPRESS form: parsing,
// matching a test's leaks, and the end-of-run summary.
#include "suppressions.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>

namespace closecheck::detail {

std::vector<std::string_view> split_list(std::string_view text, std::string_view separators) {
  std::vector<std::string_view> items;
  for (;;) {
    auto at = text.find_first_of(separators);
    items.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return items;
    text.remove_prefix(at + 1);
  }
}

namespace {

constexpr std::string_view known_keys = "test, kind, state, local, peer, target, opened_in, count, reason";

bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string plural(std::size_t n, const char* what) {
  return std::to_string(n) + " " + what + (n == 1 ? "" : "s");
}

// fnmatch(3) takes any string and treats a malformed pattern literally, which
// is never what a suppression meant.
std::string glob_problem(std::string_view g) {
  for (std::size_t i = 0; i < g.size(); ++i) {
    if (g[i] == '\\') {
      if (++i == g.size()) return "it ends in a lone '\\'";
    } else if (g[i] == '[') {
      auto j = i + 1;
      if (j < g.size() && (g[j] == '!' || g[j] == '^')) ++j;
      if (j < g.size() && g[j] == ']') ++j;  // "[]...]": the first ']' is a member
      j = g.find(']', j);
      if (j == std::string_view::npos) return "its '[' has no closing ']'";
      i = j;
    }
  }
  return {};
}

// The names the report prints: a Kind ("pipe", "eventfd", "socket"), or a
// socket's protocol after "socket " ("tcp", "udp", "unix stream").
std::optional<Match> kind_match(std::string_view value, bool* is_tcp) {
  std::string v = lower(value);
  *is_tcp = false;
  bool socket_prefix = v.starts_with("socket ");
  if (socket_prefix) v.erase(0, std::strlen("socket "));
  if (!socket_prefix)
    for (int k = 0; k <= static_cast<int>(Kind::other); ++k)
      if (to_string(static_cast<Kind>(k)) == v) {
        *is_tcp = false;
        return kind(static_cast<Kind>(k));
      }
  if (v == "tcp") {
    *is_tcp = true;
    return tcp();
  }
  if (v == "unix")  // any of the three
    return Match().with("socket unix", [](const Fd& fd) {
      return fd.socket && fd.socket->protocol_name().starts_with("unix");
    });
  if (v == "udp" || v == "raw" || v == "unix stream" || v == "unix dgram" || v == "unix seqpacket" ||
      (v.starts_with("netlink ") && v.size() > std::strlen("netlink ")))
    return socket_protocol(v);
  return std::nullopt;
}

std::string known_kinds() {
  std::string s;
  for (int k = 0; k <= static_cast<int>(Kind::other); ++k) s += std::string(to_string(static_cast<Kind>(k))) + ", ";
  return s + "tcp, udp, raw, unix, unix stream, unix dgram, unix seqpacket, netlink route, netlink ...";
}

// As the report prints them (to_string), in any case: CLOSE_WAIT, close_wait.
std::optional<TcpState> state_named(std::string_view value) {
  for (int s = static_cast<int>(TcpState::established); s <= static_cast<int>(TcpState::new_syn_recv); ++s)
    if (lower(to_string(static_cast<TcpState>(s))) == lower(value)) return static_cast<TcpState>(s);
  return std::nullopt;
}

std::string known_states() {
  std::string s;
  for (int i = static_cast<int>(TcpState::established); i <= static_cast<int>(TcpState::new_syn_recv); ++i)
    s += (s.empty() ? "" : ", ") + std::string(to_string(static_cast<TcpState>(i)));
  return s;
}

enum class Parsed { blank, ok, error };

// One suppression: whitespace-separated key=value; a value in double quotes
// may hold spaces, '#' and '\"'; a '#' that starts a word begins a comment.
Parsed parse_entry(std::string_view text, Suppression& s, std::string* why) {
  std::vector<std::pair<std::string, std::string>> fields;
  std::size_t i = 0;
  for (;;) {
    while (i < text.size() && is_space(text[i])) ++i;
    if (i == text.size() || text[i] == '#') break;
    auto start = i;
    while (i < text.size() && !is_space(text[i]) && text[i] != '=') ++i;
    if (i == text.size() || text[i] != '=' || i == start) {
      while (i < text.size() && !is_space(text[i])) ++i;
      *why = "expected key=value, got '" + std::string(text.substr(start, i - start)) + "'";
      return Parsed::error;
    }
    std::string key(text.substr(start, i - start));
    std::string value;
    if (++i < text.size() && text[i] == '"') {
      bool closed = false;
      while (++i < text.size()) {
        char c = text[i];
        if (c == '"') {
          closed = true;
          ++i;
          break;
        }
        if (c == '\\' && i + 1 < text.size()) c = text[++i];
        value += c;
      }
      if (!closed) {
        *why = "the quoted value of '" + key + "' has no closing '\"'";
        return Parsed::error;
      }
      if (i < text.size() && !is_space(text[i])) {
        *why = "expected a space after the quoted value of '" + key + "'";
        return Parsed::error;
      }
    } else {
      while (i < text.size() && !is_space(text[i])) value += text[i++];
    }
    fields.emplace_back(std::move(key), std::move(value));
  }
  if (fields.empty()) return Parsed::blank;

  std::optional<Match> kind;
  bool kind_is_tcp = false;
  std::string kind_name;
  std::optional<TcpState> state;
  std::vector<std::string> seen;
  std::vector<std::pair<std::string, std::string>> globs;  // local, peer, target, opened_in
  bool says_what = false;
  for (auto& [key, value] : fields) {
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) {
      *why = "'" + key + "' given twice";
      return Parsed::error;
    }
    seen.push_back(key);
    if (value.empty()) {
      *why = "empty value for '" + key + "'";
      return Parsed::error;
    }
    bool glob_key = key == "test" || key == "local" || key == "peer" || key == "target" || key == "opened_in";
    if (glob_key) {
      if (auto problem = glob_problem(value); !problem.empty()) {
        *why = "bad glob '" + value + "' for '" + key + "': " + problem;
        return Parsed::error;
      }
    }
    if (key == "test") {
      s.test = value;
    } else if (glob_key) {
      globs.emplace_back(key, value);
    } else if (key == "kind") {
      kind = kind_match(value, &kind_is_tcp);
      if (!kind) {
        *why = "unknown kind '" + value + "' (known: " + known_kinds() + ")";
        return Parsed::error;
      }
      kind_name = value;
    } else if (key == "state") {
      state = state_named(value);
      if (!state) {
        *why = "unknown TCP state '" + value + "' (known, in any case: " + known_states() + ")";
        return Parsed::error;
      }
    } else if (key == "count") {
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), s.count);
      if (ec != std::errc() || p != value.data() + value.size() || s.count == 0) {
        *why = "count wants a whole number of fds from 1, got '" + value + "'";
        return Parsed::error;
      }
      continue;
    } else if (key == "reason") {
      s.reason = value;
      continue;
    } else {
      *why = "unknown key '" + key + "' (known: " + std::string(known_keys) + ")";
      return Parsed::error;
    }
    says_what = true;
  }
  if (!says_what) {
    *why = "a suppression must say what it acknowledges: at least one of test, kind, state, local, peer, "
           "target, opened_in";
    return Parsed::error;
  }
  if (state && kind && !kind_is_tcp && lower(kind_name) != "socket") {
    *why = "state=" + std::string(to_string(*state)) + " is a TCP state, and kind=" + kind_name + " is not TCP";
    return Parsed::error;
  }
  s.match = kind ? *kind : state ? tcp() : any();
  if (state) s.match = s.match.state(*state);
  for (const auto& [key, glob] : globs) {
    if (key == "local") s.match = s.match.local(glob);
    else if (key == "peer") s.match = s.match.peer(glob);
    else if (key == "target") s.match = s.match.target(glob);
    else s.match = s.match.with("opened in " + glob, ignore_opened_in(glob));
  }
  return Parsed::ok;
}

}  // namespace

namespace {

// A file has one suppression per line; the inline form also ends one at ';'.
bool add_entries(std::vector<Suppression>& list, std::string_view text, const std::string& source,
                 std::string_view separators, std::string* error) {
  int n = 0;
  for (auto entry : split_list(text, separators)) {
    Suppression s;
    s.file = source;
    s.line = ++n;
    std::string why;
    switch (parse_entry(entry, s, &why)) {
      case Parsed::blank: break;
      case Parsed::error: *error = s.where() + ": " + why; return false;
      case Parsed::ok:
        s.text = std::string(entry.substr(entry.find_first_not_of(" \t")));
        while (!s.text.empty() && is_space(s.text.back())) s.text.pop_back();
        list.push_back(std::move(s));
    }
  }
  return true;
}

}  // namespace

bool Suppressions::add_inline(std::string_view text, const std::string& source, std::string* error) {
  return add_entries(list, text, source, ";\n", error);
}

bool Suppressions::add_file(const std::string& path, std::string* error) {
  // stdio, not an ifstream: a directory opens, and only its read says EISDIR.
  std::FILE* f = std::fopen(path.c_str(), "re");
  std::string text;
  int err = 0;
  if (!f) {
    err = errno;
  } else {
    char buf[4096];
    while (auto n = std::fread(buf, 1, sizeof buf, f)) text.append(buf, n);
    if (std::ferror(f)) err = errno ? errno : EIO;
    std::fclose(f);
  }
  if (err) {
    *error = "cannot read suppressions file '" + path + "': " + std::strerror(err);
    return false;
  }
  return add_entries(list, text, path, "\n", error);
}

std::vector<std::size_t> Suppressions::applying_to(const std::string& test) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < list.size(); ++i)
    if (fnmatch(list[i].test.c_str(), test.c_str(), 0) == 0) {
      ++list[i].tests;
      out.push_back(i);
    }
  return out;
}

Split Suppressions::split(const std::vector<std::size_t>& applying, const std::vector<Fd>& leaks) const {
  Split out;
  std::vector<std::size_t> taken(list.size()), over(list.size());
  for (const auto& fd : leaks) {
    std::optional<std::size_t> claimed, full;
    for (auto i : applying) {
      if (!list[i].match(fd)) continue;
      if (list[i].count && taken[i] == list[i].count) {
        if (!full) full = i;
        continue;
      }
      claimed = i;
      break;
    }
    if (claimed) {
      ++taken[*claimed];
      out.suppressed.emplace_back(fd, *claimed);
    } else {
      if (full) ++over[*full];
      out.leaks.push_back(fd);
    }
  }
  for (auto i : applying)
    if (over[i])
      out.notes.push_back(list[i].where() + " acknowledges at most " + plural(list[i].count, "fd") +
                          " per test; this test leaked " + std::to_string(list[i].count + over[i]) +
                          " that it matches");
  return out;
}

void Suppressions::record(const Split& split) {
  std::vector<bool> hit(list.size());
  for (const auto& [fd, i] : split.suppressed) {
    ++list[i].fds;
    hit[i] = true;
  }
  for (std::size_t i = 0; i < list.size(); ++i) list[i].hit_tests += hit[i];
}

void Suppressions::reset_counts() {
  for (auto& s : list) s.tests = s.fds = s.hit_tests = 0;
}

std::string Suppressions::summary() const {
  if (list.empty()) return {};
  std::size_t used = 0, unused_n = 0, idle = 0;
  std::string lines;
  for (const auto& s : list) {
    if (s.fds) {
      ++used;
      lines += "closecheck: suppression " + s.where() + " acknowledged " + plural(s.fds, "fd") + " in " +
               plural(s.hit_tests, "test") + "\n";
    } else if (unused(s)) {
      ++unused_n;
      lines += "closecheck: unused suppression " + s.where() + ": it applies to " +
               plural(s.tests, "test") + " that ran and acknowledged nothing (fixed? then remove it): " +
               s.text + "\n";
    } else {
      ++idle;
      lines += "closecheck: suppression " + s.where() + " did not apply: no test that ran matches test=" +
               s.test + "\n";
    }
  }
  return "closecheck: suppressions: " + std::to_string(used) + " used, " + std::to_string(unused_n) +
         " unused, " + std::to_string(idle) + " not applied\n" + lines;
}

}  // namespace closecheck::detail
