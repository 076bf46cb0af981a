// Suppressions: known leaks acknowledged from a file or the environment, with
// no code change (docs/using-the-harness.md, "Acknowledging known leaks without
// code changes"). Internal to closecheck::gtest.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "closecheck/closecheck.hpp"

namespace closecheck::detail {

// "a:b::c" -> "a", "b", "", "c": split at any of separators, empty items kept.
std::vector<std::string_view> split_list(std::string_view text, std::string_view separators);

struct Suppression {
  std::string file;  // the suppressions file, or "CLOSECHECK_SUPPRESS"
  int line = 0;      // its line (for the inline form: which entry)
  std::string text;  // as written, for the summary
  std::string test = "*";  // glob over "Suite.Test"
  Match match;
  std::size_t count = 0;  // at most this many fds per test; 0: any number
  std::string reason;
  // What it did in this run.
  std::size_t tests = 0;       // tests run that test= matched
  std::size_t fds = 0;         // fds it acknowledged
  std::size_t hit_tests = 0;   // tests in which it acknowledged one
  std::string where() const { return file + ":" + std::to_string(line); }
};

struct Split {
  std::vector<Fd> leaks;  // matched by no suppression (or beyond its count)
  std::vector<std::pair<Fd, std::size_t>> suppressed;  // with the index of the suppression
  std::vector<std::string> notes;  // suppressions whose count= the test went past
};

struct Suppressions {
  std::vector<Suppression> list;
  bool fail_on_unused = false;

  // Each returns false with "file:line: why" in *error.
  bool add_file(const std::string& path, std::string* error);
  // Entries separated by ';' or newlines; source names them in messages
  // ("CLOSECHECK_SUPPRESS:2" is the second).
  bool add_inline(std::string_view text, const std::string& source, std::string* error);

  // The suppressions whose test= matches test (counted as run).
  std::vector<std::size_t> applying_to(const std::string& test);
  // Which of leaks the suppressions in `applying` acknowledge: each fd goes to
  // the first one that matches it and has count left. Pure: records nothing.
  Split split(const std::vector<std::size_t>& applying, const std::vector<Fd>& leaks) const;
  void record(const Split&);

  void reset_counts();
  std::string summary() const;  // used, unused, not applied
  bool unused(const Suppression& s) const { return s.tests > 0 && s.fds == 0; }
};

}  // namespace closecheck::detail
