#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>

#include "closecheck/gtest.hpp"
#include "format.hpp"
#include "suppressions.hpp"

namespace closecheck {

namespace {
::testing::AssertionResult to_assertion(const Verdict& v) {
  if (v.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << v.message;
}

std::string full_name(const ::testing::TestInfo& info) {  // "Suite.Test", "Prefix/Suite.Test/0"
  return std::string(info.test_suite_name()) + "." + info.name();
}

// After the last test: which suppressions acknowledged something, which
// applied and acknowledged nothing (unused: stale once a library is fixed),
// and which applied to no test that ran (not a failure: --gtest_filter).
class SuppressionSummary : public ::testing::Environment {
 public:
  explicit SuppressionSummary(std::shared_ptr<detail::Suppressions> s) : suppressions_(std::move(s)) {}
  void SetUp() override { suppressions_->reset_counts(); }
  void TearDown() override {
    std::cout << suppressions_->summary() << std::flush;
    if (!suppressions_->fail_on_unused) return;
    for (const auto& s : suppressions_->list)
      if (suppressions_->unused(s))
        GTEST_MESSAGE_AT_(s.file.c_str(), s.line, "", ::testing::TestPartResult::kNonFatalFailure)
            << "closecheck: unused suppression (--closecheck_fail_on_unused_suppressions): " << s.text;
  }

 private:
  std::shared_ptr<detail::Suppressions> suppressions_;
};
}  // namespace

LeakResult Leaks(const std::vector<Expected>& expected, const std::function<void()>& block,
                 Reclaim reclaim, const Options& options) {
  auto verdict = expect_leaks(expected, block, reclaim, options);
  LeakResult result(to_assertion(verdict));
  result.leaked = std::move(verdict.leaked);
  return result;
}

::testing::AssertionResult NoLeaks(const std::function<void()>& block, const Options& options) {
  return to_assertion(expect_no_leaks(block, options));
}

LeakCheckListener::LeakCheckListener(Options options, std::string json_path,
                                     std::shared_ptr<detail::Suppressions> suppressions)
    : options_(std::move(options)),
      json_path_(std::move(json_path)),
      suppressions_(suppressions ? std::move(suppressions) : std::make_shared<detail::Suppressions>()) {}

#ifdef CLOSECHECK_OPEN_SITES
extern "C" void* closecheck_sites_table(void);  // libclosecheck_sites.so: referenced, so linked
#endif

void LeakCheckListener::OnTestStart(const ::testing::TestInfo&) {
#ifdef CLOSECHECK_OPEN_SITES
  static const bool recording = closecheck_sites_table() != nullptr;
  (void)recording;
#endif
  take_bad_closes();  // not this test's
  baseline_ = next_baseline_ ? std::move(*next_baseline_) : Snapshot::take();
  next_baseline_.reset();
}

void LeakCheckListener::OnTestSuiteEnd(const ::testing::TestSuite&) { next_baseline_.reset(); }

void LeakCheckListener::OnTestEnd(const ::testing::TestInfo& info) {
  const Options& options = options_;
  auto closes = take_bad_closes();
  if (!closes.empty()) {
    std::string text;
    for (const auto& b : closes) text += describe(b, options.frames);
    GTEST_MESSAGE_AT_(info.file(), info.line(), "", ::testing::TestPartResult::kNonFatalFailure)
        << "closecheck: this test closed an fd that was not open:\n" << text;
  }
  // Settles as find_leaks does, one look per try, until what is left is
  // acknowledged by a suppression (without any: until nothing is left).
  auto test = full_name(info);
  auto applying = suppressions_->applying_to(test);
  Options once = options;
  once.settle = {};
  Snapshot now;
  detail::Split split;
  eventually(
      [&] {
        split = suppressions_->split(applying, find_leaks(baseline_, once, &now));
        return split.leaks.empty();
      },
      options);
  suppressions_->record(split);
  std::string acknowledged;  // also a property of the test in --gtest_output's XML and JSON
  for (const auto& [fd, i] : split.suppressed) {
    const auto& s = suppressions_->list[i];
    auto line = "suppressed by " + s.where() + (s.reason.empty() ? "" : " (" + s.reason + ")") + ": " + describe(fd);
    std::cout << "closecheck: " << line << std::endl;
    acknowledged += (acknowledged.empty() ? "" : "\n") + line;
  }
  if (!acknowledged.empty()) ::testing::Test::RecordProperty("closecheck_suppressed", acknowledged);
  const auto& leaks = split.leaks;
  if (!json_path_.empty() && (!leaks.empty() || !split.suppressed.empty())) {
    std::ofstream out(json_path_, std::ios::app);
    out << "{\"test\":" << detail::json_string(test) << ",\"leaks\":" << to_json(leaks);
    if (!split.suppressed.empty()) {
      out << ",\"suppressed\":[";
      for (std::size_t k = 0; k < split.suppressed.size(); ++k) {
        const auto& [fd, i] = split.suppressed[k];
        const auto& s = suppressions_->list[i];
        auto object = to_json(fd);
        object.pop_back();  // its closing brace
        out << (k ? "," : "") << object << ",\"suppressed_by\":" << detail::json_string(s.where())
            << (s.reason.empty() ? "" : ",\"reason\":" + detail::json_string(s.reason)) << "}";
      }
      out << "]";
    }
    out << "}\n";
  }
  if (leaks.empty()) {
    next_baseline_ = std::move(now);
    return;
  }
  std::string notes;
  for (const auto& n : split.notes) notes += "closecheck: " + n + "\n";
  // Listeners' OnTestEnd runs before the result printer's, and the test is
  // still current, so this failure belongs to the test that leaked.
  GTEST_MESSAGE_AT_(info.file(), info.line(), "", ::testing::TestPartResult::kNonFatalFailure)
      << "closecheck: " << leaks.size() << " fd" << (leaks.size() == 1 ? "" : "s")
      << " leaked by this test:\n"
      << report(leaks, options.frames) << notes;
}

bool install_listener(int* argc, char** argv) {
  Options options;
  std::string json;
  bool off = false;
  auto suppressions = std::make_shared<detail::Suppressions>();
  auto settle_from = [&](const char* text, const char* source) {
    int ms = 0;
    auto end = text + std::strlen(text);
    auto [p, ec] = std::from_chars(text, end, ms);
    if (ec != std::errc() || p != end || ms < 0) {
      std::cerr << "closecheck: " << source << " wants a whole number of milliseconds, got '"
                << text << "'\n";
      return false;
    }
    options.settle = std::chrono::milliseconds(ms);
    return true;
  };
  if (const char* e = std::getenv("CLOSECHECK_SETTLE_MS"); e && !settle_from(e, "CLOSECHECK_SETTLE_MS"))
    return false;
  if (const char* e = std::getenv("CLOSECHECK_JSON")) json = e;
  auto frames_from = [&](const char* text, const char* source) {
    std::size_t n = 0;
    auto end = text + std::strlen(text);
    auto [p, ec] = std::from_chars(text, end, n);
    if (ec != std::errc() || p != end || n > 64) {
      std::cerr << "closecheck: " << source << " wants a number of frames from 0 to 64, got '" << text
                << "'\n";
      return false;
    }
    options.frames = n;
    return true;
  };
  if (const char* e = std::getenv("CLOSECHECK_FRAMES"); e && !frames_from(e, "CLOSECHECK_FRAMES"))
    return false;
  // Colon-separated, like PATH: each a glob for ignore_opened_in().
  if (const char* e = std::getenv("CLOSECHECK_IGNORE_OPENED_IN"))
    for (auto item : detail::split_list(e, ":"))
      if (!item.empty()) options.ignore.push_back(ignore_opened_in(std::string(item)));
  if (const char* e = std::getenv("CLOSECHECK")) off = std::strcmp(e, "off") == 0;
  // Suppressions: every error names its file:line (or CLOSECHECK_SUPPRESS:N).
  auto said = [&](bool ok, const std::string& why) {  // ok, or why on stderr
    if (!ok) std::cerr << "closecheck: " << why << "\n";
    return ok;
  };
  auto add_file = [&](std::string_view path) {
    std::string why;
    return said(suppressions->add_file(std::string(path), &why), why);
  };
  auto add_inline = [&](std::string_view text, const std::string& source) {
    std::string why;
    return said(suppressions->add_inline(text, source, &why), why);
  };
  if (const char* e = std::getenv("CLOSECHECK_SUPPRESSIONS"))
    for (auto path : detail::split_list(e, ":"))
      if (!path.empty() && !add_file(path)) return false;
  if (const char* e = std::getenv("CLOSECHECK_SUPPRESS"); e && !add_inline(e, "CLOSECHECK_SUPPRESS"))
    return false;
  if (const char* e = std::getenv("CLOSECHECK_FAIL_ON_UNUSED_SUPPRESSIONS")) {
    if (std::strcmp(e, "1") != 0 && std::strcmp(e, "0") != 0) {
      std::cerr << "closecheck: CLOSECHECK_FAIL_ON_UNUSED_SUPPRESSIONS wants 1 or 0, got '" << e << "'\n";
      return false;
    }
    suppressions->fail_on_unused = std::strcmp(e, "1") == 0;
  }

  int kept = 1;
  std::string inline_flags;
  for (int i = 1; i < *argc; ++i) {
    std::string_view arg = argv[i];
    auto value = [&](std::string_view flag) { return arg.substr(flag.size()); };
    if (arg.starts_with("--closecheck_settle_ms=")) {
      if (!settle_from(argv[i] + std::strlen("--closecheck_settle_ms="), "--closecheck_settle_ms"))
        return false;
    } else if (arg.starts_with("--closecheck_json=")) {
      json = std::string(value("--closecheck_json="));
    } else if (arg.starts_with("--closecheck_frames=")) {
      if (!frames_from(argv[i] + std::strlen("--closecheck_frames="), "--closecheck_frames")) return false;
    } else if (arg.starts_with("--closecheck_ignore_opened_in=")) {
      options.ignore.push_back(ignore_opened_in(std::string(value("--closecheck_ignore_opened_in="))));
    } else if (arg.starts_with("--closecheck_suppressions=")) {
      if (!add_file(value("--closecheck_suppressions="))) return false;
    } else if (arg.starts_with("--closecheck_suppress=")) {
      // Numbered on from one flag to the next: "--closecheck_suppress:2" is the second.
      (inline_flags += inline_flags.empty() ? "" : ";") += value("--closecheck_suppress=");
    } else if (arg == "--closecheck_fail_on_unused_suppressions") {
      suppressions->fail_on_unused = true;
    } else if (arg == "--closecheck=off") {
      off = true;
    } else if (arg.starts_with("--closecheck")) {
      std::cerr << "closecheck: unknown flag '" << arg
                << "' (known: --closecheck_settle_ms=N, --closecheck_json=FILE, --closecheck_frames=N, "
                   "--closecheck_ignore_opened_in=GLOB, --closecheck_suppressions=FILE, "
                   "--closecheck_suppress=SUPPRESSION, --closecheck_fail_on_unused_suppressions, "
                   "--closecheck=off)\n";
      return false;
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  argv[kept] = nullptr;
  if (!add_inline(inline_flags, "--closecheck_suppress")) return false;
  if (off) return true;
  ::testing::UnitTest::GetInstance()->listeners().Append(new LeakCheckListener(options, json, suppressions));
  if (!suppressions->list.empty())
    ::testing::AddGlobalTestEnvironment(new SuppressionSummary(suppressions));
  return true;
}

}  // namespace closecheck
