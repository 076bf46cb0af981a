// GoogleTest integration: a listener that checks every test for leaked
// descriptors, and an assertion for tests that must leak something exactly.
//
// Link closecheck::gtest_main instead of GTest::gtest_main and every test is
// checked. With a main of your own, call closecheck::install_listener().
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>

#include "closecheck/closecheck.hpp"
#include "closecheck/eventually.hpp"

namespace closecheck {

namespace detail {
struct Suppressions;  // suppressions files and CLOSECHECK_SUPPRESS (src/suppressions.hpp)
}

// What Leaks() found: it passes or fails an EXPECT_TRUE / ASSERT_TRUE (with
// the report of what leaked) and hands back what leaked.
//   auto leaks = closecheck::Leaks({{1, tcp(TcpState::close_wait)}}, [&] { ... });
//   EXPECT_TRUE(leaks);
//   EXPECT_EQ(leaks.leaked[0].socket->peer, client);
struct LeakResult : ::testing::AssertionResult {
  explicit LeakResult(::testing::AssertionResult r) : ::testing::AssertionResult(std::move(r)) {}
  std::vector<Fd> leaked;  // everything new since the block started
};
LeakResult Leaks(const std::vector<Expected>& expected, const std::function<void()>& block,
                 Reclaim reclaim = Reclaim::keep, const Options& = {});
::testing::AssertionResult NoLeaks(const std::function<void()>& block, const Options& = {});

// The per-test check, GoogleTest's sample10 pattern: snapshot in OnTestStart,
// find leaks in OnTestEnd and fail the test that leaked, with the report.
class LeakCheckListener : public ::testing::EmptyTestEventListener {
 public:
  // suppressions: known leaks that do not fail a test (install_listener reads them).
  explicit LeakCheckListener(Options options = {}, std::string json_path = {},
                             std::shared_ptr<detail::Suppressions> suppressions = {});
  void OnTestStart(const ::testing::TestInfo&) override;
  void OnTestEnd(const ::testing::TestInfo&) override;
  void OnTestSuiteEnd(const ::testing::TestSuite&) override;

 private:
  Options options_;
  std::string json_path_;
  std::shared_ptr<detail::Suppressions> suppressions_;
  Snapshot baseline_;
  // After a clean test, the snapshot its check took is the next test's
  // baseline: nothing runs between two tests of one suite (the fixture is
  // destroyed before OnTestEnd). Dropped at the end of a suite, so that
  // SetUpTestSuite's descriptors are not charged to the next suite's first test.
  std::optional<Snapshot> next_baseline_;
};

// Appends a LeakCheckListener configured from the environment and from
// --closecheck_* flags (removed from argv): --closecheck_settle_ms=N
// (CLOSECHECK_SETTLE_MS), --closecheck_json=FILE (CLOSECHECK_JSON: one JSON
// line per test that leaked, suppressed fds included), --closecheck_frames=N (CLOSECHECK_FRAMES: stack
// frames after each open site), --closecheck_ignore_opened_in=GLOB, repeatable
// (CLOSECHECK_IGNORE_OPENED_IN: globs separated by ':'), --closecheck=off
// (CLOSECHECK=off). A test that closes an fd that is not open fails too.
// Known leaks, acknowledged without code changes (docs/using-the-harness.md,
// "Acknowledging known leaks without code changes"):
// --closecheck_suppressions=FILE, repeatable (CLOSECHECK_SUPPRESSIONS: files
// separated by ':'), one suppression per line such as
//   test=BindServerTest.* kind=tcp state=LISTEN reason="Server::stop() leaves it bound"
// --closecheck_suppress=SUPPRESSION, repeatable (CLOSECHECK_SUPPRESS: the same
// lines, separated by ';'), and --closecheck_fail_on_unused_suppressions
// (CLOSECHECK_FAIL_ON_UNUSED_SUPPRESSIONS=1): a suppression that applied to a
// test but acknowledged nothing fails the run (by default it is only listed
// in the summary at the end). A suppressed fd does not fail its test; a line
// names it and the suppression (file:line), also recorded as the test's
// property closecheck_suppressed. Call after InitGoogleTest. Returns
// false, with a message on stderr, for a bad flag or a bad suppression
// (naming its file:line) or an unreadable suppressions file.
bool install_listener(int* argc, char** argv);

}  // namespace closecheck
