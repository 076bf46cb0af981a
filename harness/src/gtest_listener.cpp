#include <charconv>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>

#include "closecheck/gtest.hpp"
#include "format.hpp"

namespace closecheck {

namespace {
std::mutex test_ignores_mutex;
std::vector<Predicate> test_ignores;

::testing::AssertionResult to_assertion(const Verdict& v) {
  if (v.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << v.message;
}
}  // namespace

::testing::AssertionResult Leaks(const std::vector<Expected>& expected,
                                 const std::function<void()>& block, Reclaim reclaim,
                                 const Options& options) {
  return to_assertion(expect_leaks(expected, block, reclaim, options));
}

::testing::AssertionResult NoLeaks(const std::function<void()>& block, const Options& options) {
  return to_assertion(expect_no_leaks(block, options));
}

void ignore_in_this_test(Predicate p) {
  std::lock_guard lock(test_ignores_mutex);
  test_ignores.push_back(std::move(p));
}

LeakCheckListener::LeakCheckListener(Options options, std::string json_path)
    : options_(std::move(options)), json_path_(std::move(json_path)) {}

#ifdef CLOSECHECK_OPEN_SITES
extern "C" void* closecheck_sites_table(void);  // libclosecheck_sites.so: referenced, so linked
#endif

void LeakCheckListener::OnTestStart(const ::testing::TestInfo&) {
#ifdef CLOSECHECK_OPEN_SITES
  static const bool recording = closecheck_sites_table() != nullptr;
  (void)recording;
#endif
  take_bad_closes();  // not this test's
  {
    std::lock_guard lock(test_ignores_mutex);
    test_ignores.clear();
  }
  baseline_ = next_baseline_ ? std::move(*next_baseline_) : Snapshot::take();
  next_baseline_.reset();
}

void LeakCheckListener::OnTestSuiteEnd(const ::testing::TestSuite&) { next_baseline_.reset(); }

void LeakCheckListener::OnTestEnd(const ::testing::TestInfo& info) {
  Options options = options_;
  {
    std::lock_guard lock(test_ignores_mutex);
    options.ignore.insert(options.ignore.end(), test_ignores.begin(), test_ignores.end());
  }
  auto closes = take_bad_closes();
  if (!closes.empty()) {
    std::string text;
    for (const auto& b : closes) text += describe(b, options.frames);
    GTEST_MESSAGE_AT_(info.file(), info.line(), "", ::testing::TestPartResult::kNonFatalFailure)
        << "closecheck: this test closed an fd that was not open:\n" << text;
  }
  Snapshot now;
  auto leaks = find_leaks(baseline_, options, &now);
  if (leaks.empty()) {
    next_baseline_ = std::move(now);
    return;
  }
  // Listeners' OnTestEnd runs before the result printer's, and the test is
  // still current, so this failure belongs to the test that leaked.
  GTEST_MESSAGE_AT_(info.file(), info.line(), "", ::testing::TestPartResult::kNonFatalFailure)
      << "closecheck: " << leaks.size() << " fd" << (leaks.size() == 1 ? "" : "s")
      << " leaked by this test:\n"
      << report(leaks, options.frames);
  if (!json_path_.empty()) {
    std::ofstream out(json_path_, std::ios::app);
    out << "{\"test\":"
        << detail::json_string(std::string(info.test_suite_name()) + "." + info.name())
        << ",\"leaks\":" << to_json(leaks) << "}\n";
  }
}

bool install_listener(int* argc, char** argv) {
  Options options;
  std::string json;
  bool off = false;
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
  if (const char* e = std::getenv("CLOSECHECK_IGNORE_OPENED_IN")) {
    std::string_view list = e;
    while (!list.empty()) {
      auto colon = list.find(':');
      auto item = list.substr(0, colon);
      if (!item.empty()) options.ignore.push_back(ignore_opened_in(std::string(item)));
      list = colon == std::string_view::npos ? std::string_view() : list.substr(colon + 1);
    }
  }
  if (const char* e = std::getenv("CLOSECHECK")) off = std::strcmp(e, "off") == 0;

  int kept = 1;
  for (int i = 1; i < *argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.starts_with("--closecheck_settle_ms=")) {
      if (!settle_from(argv[i] + std::strlen("--closecheck_settle_ms="), "--closecheck_settle_ms"))
        return false;
    } else if (arg.starts_with("--closecheck_json=")) {
      json = std::string(arg.substr(std::strlen("--closecheck_json=")));
    } else if (arg.starts_with("--closecheck_frames=")) {
      if (!frames_from(argv[i] + std::strlen("--closecheck_frames="), "--closecheck_frames")) return false;
    } else if (arg.starts_with("--closecheck_ignore_opened_in=")) {
      options.ignore.push_back(
          ignore_opened_in(std::string(arg.substr(std::strlen("--closecheck_ignore_opened_in=")))));
    } else if (arg == "--closecheck=off") {
      off = true;
    } else if (arg.starts_with("--closecheck")) {
      std::cerr << "closecheck: unknown flag '" << arg
                << "' (known: --closecheck_settle_ms=N, --closecheck_json=FILE, --closecheck_frames=N, "
                   "--closecheck_ignore_opened_in=GLOB, --closecheck=off)\n";
      return false;
    } else {
      argv[kept++] = argv[i];
    }
  }
  *argc = kept;
  argv[kept] = nullptr;
  if (!off)
    ::testing::UnitTest::GetInstance()->listeners().Append(
        new LeakCheckListener(options, json));
  return true;
}

}  // namespace closecheck
