// Suppressions: known leaks acknowledged from a file, CLOSECHECK_SUPPRESS or
// --closecheck_suppress, with no code change. Each test runs
// suppressions_demo (linked with closecheck::gtest_main, as a third-party
// suite would be) in a child process and checks its exit status and output.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "closecheck/gtest.hpp"

namespace {

std::string quote(const std::string& s) {  // for sh
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// "[  FAILED  ] Suite.Test (0 ms)", or for a parameterized test "..., where GetParam() = 0".
bool failed(const std::string& out, const std::string& test) {
  auto line = "[  FAILED  ] " + test;
  for (auto at = out.find(line); at != std::string::npos; at = out.find(line, at + 1))
    if (auto next = out[at + line.size()]; next == ' ' || next == ',') return true;
  return false;
}

std::string contents(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Outcome {
  int status = -1;  // the exit status
  std::string out;  // stdout and stderr
};

class Suppressions : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = ::testing::TempDir() + "closecheck-suppressions-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A suppressions file in this test's own directory.
  std::string file(const std::string& name, const std::string& text) {
    auto path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }

  // The demo's tests matching filter; env is "NAME=VALUE ..." (quoted with env_var).
  Outcome run(const std::string& filter, const std::string& args = "", const std::string& env = "") {
    std::string command =
        "env -u CLOSECHECK_SUPPRESS -u CLOSECHECK_SUPPRESSIONS -u CLOSECHECK_FAIL_ON_UNUSED_SUPPRESSIONS "
        "-u CLOSECHECK_JSON -u CLOSECHECK " + env + " " + quote(SUPPRESSIONS_DEMO) +
        " --gtest_filter=" + quote(filter) + " --closecheck_settle_ms=100 " + args + " 2>&1";
    Outcome r;
    FILE* out = popen(command.c_str(), "r");
    if (!out) return r;
    char buf[4096];
    while (auto n = fread(buf, 1, sizeof buf, out)) r.out.append(buf, n);
    int status = pclose(out);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
  }

  static std::string env_var(const std::string& name, const std::string& value) {
    return name + "=" + quote(value);
  }
  static std::string flag(const std::string& name, const std::string& value) {
    return quote(name + "=" + value);
  }

  std::string dir_;
};

constexpr const char* leaked = " leaked by this test:\n";

// What every other test relies on: each of the demo's tests really leaks.
TEST_F(Suppressions, WithoutOneEveryDemoLeakFailsItsTest) {
  auto r = run("Known.*:Ports/*");
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("[       OK ] Known.Clean"), std::string::npos) << r.out;
  for (auto test : {"Known.LeaksAListeningSocket", "Known.LeaksTwoListeningSockets", "Known.LeavesCloseWait",
                    "Ports/Param.LeaksAPipe/0", "Ports/Param.LeaksAPipe/1"})
    EXPECT_TRUE(failed(r.out, test)) << test << "\n" << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppress"), 0u) << r.out;
}

TEST_F(Suppressions, AFileSuppressionPassesTheTestAndSaysWhichLineAcknowledgedWhichFd) {
  auto supp = file("known.supp",
                   "# cpp-httplib 0.11.4: Server::stop() does not close a bound socket\n"
                   "\n"
                   "test=Known.LeaksAListeningSocket kind=tcp state=LISTEN local=127.0.0.1:*  "
                   "reason=\"bound, never closed\"  # the comment ends the line\n");
  auto json = dir_ + "/leaks.json";
  auto xml = dir_ + "/junit.xml";
  auto r = run("Known.LeaksAListeningSocket", flag("--closecheck_suppressions", supp) + " " +
                                                  flag("--closecheck_json", json) + " " +
                                                  flag("--gtest_output", "xml:" + xml));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("[       OK ] Known.LeaksAListeningSocket"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(leaked), std::string::npos) << r.out;
  // One line: the suppression, its reason, and the fd as the report prints it.
  auto line = "closecheck: suppressed by " + supp + ":3 (bound, never closed): fd ";
  auto at = r.out.find(line);
  ASSERT_NE(at, std::string::npos) << r.out;
  auto end = r.out.find('\n', at);
  auto fd_line = r.out.substr(at, end - at);
  EXPECT_NE(fd_line.find("  socket tcp  127.0.0.1:"), std::string::npos) << fd_line;
  EXPECT_TRUE(fd_line.ends_with("  LISTEN")) << fd_line;
  EXPECT_NE(r.out.find("closecheck: suppressions: 1 used, 0 unused, 0 not applied\n"
                       "closecheck: suppression " + supp + ":3 acknowledged 1 fd in 1 test\n"),
            std::string::npos) << r.out;
  // GoogleTest's XML (JUnit): the same line, as a property of the test.
  auto j = contents(xml);
  EXPECT_NE(j.find("<property name=\"closecheck_suppressed\" value=\"suppressed by " + supp +
                   ":3 (bound, never closed): fd "),
            std::string::npos) << j;
  // JSON: no leak, one suppressed fd with the suppression that took it.
  j = contents(json);
  EXPECT_EQ(occurrences(j, "\n"), 1u) << j;
  EXPECT_TRUE(j.starts_with("{\"test\":\"Known.LeaksAListeningSocket\",\"leaks\":[],\"suppressed\":[{\"fd\":"))
      << j;
  EXPECT_NE(j.find("\"state\":\"LISTEN\""), std::string::npos) << j;
  EXPECT_NE(j.find(",\"suppressed_by\":\"" + supp + ":3\",\"reason\":\"bound, never closed\"}]}\n"),
            std::string::npos) << j;
}

// A suppression that matches, by each of its keys: the test passes and one
// line per fd names the suppression.
struct Matching {
  const char* name;
  std::string filter;
  std::string suppression;
  std::size_t acknowledged;
};

void PrintTo(const Matching& m, std::ostream* os) { *os << m.filter << " with " << m.suppression; }

class Matches : public Suppressions, public ::testing::WithParamInterface<Matching> {};

TEST_P(Matches, AndTheTestPasses) {
  const auto& m = GetParam();
  auto supp = file("s.supp", m.suppression + "\n");
  auto r = run(m.filter, flag("--closecheck_suppressions", supp));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(r.out.find(leaked), std::string::npos) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by " + supp + ":1"), m.acknowledged) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    Suppressions, Matches,
    ::testing::Values(
        Matching{"StateInAnyCaseAndPeer", "Known.LeavesCloseWait",
                 "test=Known.LeavesCloseWait kind=tcp state=close_wait peer=127.0.0.1:*", 1},
        Matching{"KindAsTheReportPrintsIt", "Known.LeaksAListeningSocket",
                 "test=Known.* kind=\"socket tcp\" state=Listen", 1},
        Matching{"ByKindAlone", "Known.LeaksAListeningSocket", "kind=socket", 1},
        Matching{"ParameterizedTestNames", "Ports/*", "test=Ports/Param.LeaksAPipe/* kind=pipe", 2},
        Matching{"CountCoversBoth", "Known.LeaksTwoListeningSockets",
                 "test=Known.LeaksTwoListeningSockets state=LISTEN count=2", 2}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(Suppressions, ByWhereTheFdWasOpened) {
  if (!closecheck::recording_open_sites())
    GTEST_SKIP() << "no open sites in this build (ThreadSanitizer, or CLOSECHECK_SITES=off)";
  auto supp = file("s.supp",
                   "test=Known.LeavesCloseWait opened_in=*/suppressions_demo.cpp state=CLOSE_WAIT\n"
                   "test=Known.LeaksAListeningSocket opened_in=*listening_socket*\n");
  auto r = run("Known.LeavesCloseWait:Known.LeaksAListeningSocket", flag("--closecheck_suppressions", supp));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by " + supp + ":1: fd "), 1u) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by " + supp + ":2: fd "), 1u) << r.out;
}

// A suppression that is wrong in one key acknowledges nothing: the test fails.
class DoesNotMatch : public Suppressions, public ::testing::WithParamInterface<Matching> {};

TEST_P(DoesNotMatch, AndTheTestFails) {
  const auto& m = GetParam();
  auto supp = file("s.supp", m.suppression + "\n");
  auto r = run(m.filter, flag("--closecheck_suppressions", supp));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(failed(r.out, m.filter)) << r.out;
  EXPECT_NE(r.out.find("closecheck: 1 fd leaked by this test:\nfd "), std::string::npos) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by "), m.acknowledged) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    Suppressions, DoesNotMatch,
    ::testing::Values(
        Matching{"WrongState", "Known.LeaksAListeningSocket",
                 "test=Known.LeaksAListeningSocket kind=tcp state=CLOSE_WAIT", 0},
        Matching{"WrongTestName", "Known.LeaksAListeningSocket", "test=Known.LeaksAListening kind=tcp", 0},
        Matching{"WrongKind", "Known.LeaksAListeningSocket", "test=Known.LeaksAListeningSocket kind=udp", 0},
        Matching{"UnixIsNotTcp", "Known.LeaksAListeningSocket", "test=Known.LeaksAListeningSocket kind=unix", 0},
        Matching{"WrongPeer", "Known.LeavesCloseWait",
                 "test=Known.LeavesCloseWait state=CLOSE_WAIT peer=10.0.0.1:*", 0},
        Matching{"WrongLocal", "Known.LeavesCloseWait", "test=Known.LeavesCloseWait local=[[]::1]:*", 0},
        Matching{"WrongOpenSite", "Known.LeaksAListeningSocket",
                 "test=Known.LeaksAListeningSocket opened_in=*/not_this_file.cpp", 0},
        // count=1 takes one of the two; the other fails the test.
        Matching{"BeyondItsCount", "Known.LeaksTwoListeningSockets",
                 "test=Known.LeaksTwoListeningSockets state=LISTEN count=1", 1}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(Suppressions, BeyondItsCountTheReportSaysSo) {
  auto r = run("Known.LeaksTwoListeningSockets", flag("--closecheck_suppress", "state=LISTEN count=1"));
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("closecheck: --closecheck_suppress:1 acknowledges at most 1 fd per test; "
                       "this test leaked 2 that it matches\n"),
            std::string::npos) << r.out;
}

TEST_F(Suppressions, InlineFromTheEnvironmentNoFileNeeded) {
  auto r = run("Known.LeaksAListeningSocket:Known.LeavesCloseWait", "",
               env_var("CLOSECHECK_SUPPRESS",
                       "test=Known.LeaksAListeningSocket kind=tcp state=LISTEN ; "
                       "test=Known.LeavesCloseWait state=CLOSE_WAIT reason=peer-closed-first"));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by CLOSECHECK_SUPPRESS:1: fd "), 1u) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by CLOSECHECK_SUPPRESS:2 (peer-closed-first): fd "), 1u)
      << r.out;
}

TEST_F(Suppressions, FilesFromTheEnvironmentAndRepeatedFlags) {
  auto a = file("a.supp", "test=Known.LeaksAListeningSocket state=LISTEN\n");
  auto b = file("b.supp", "# b\ntest=Known.LeavesCloseWait state=CLOSE_WAIT\n");
  auto c = file("c.supp", "test=Ports/* kind=pipe\n");
  auto r = run("Known.*:Ports/*",
               flag("--closecheck_suppressions", c) + " " +
                   flag("--closecheck_suppress", "test=Known.LeaksTwoListeningSockets state=LISTEN count=1") +
                   " " + flag("--closecheck_suppress", "test=Known.LeaksTwoListeningSockets count=1"),
               env_var("CLOSECHECK_SUPPRESSIONS", a + ":" + b));
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by " + a + ":1: fd "), 1u) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by " + b + ":2: fd "), 1u) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by " + c + ":1: fd "), 2u) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by --closecheck_suppress:1: fd "), 1u) << r.out;
  EXPECT_EQ(occurrences(r.out, "closecheck: suppressed by --closecheck_suppress:2: fd "), 1u) << r.out;
}

TEST_F(Suppressions, UnusedOnesAreListedAtTheEndAndFailOnlyWhenAsked) {
  auto supp = file("stale.supp",
                   "test=Known.Clean kind=tcp state=CLOSE_WAIT reason=\"fixed upstream\"\n"
                   "test=NotRunHere.* kind=tcp\n");
  auto listed = [&](const Outcome& r) {
    EXPECT_NE(r.out.find("closecheck: suppressions: 0 used, 1 unused, 1 not applied\n"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("closecheck: unused suppression " + supp + ":1: it applies to 1 test that ran and "
                         "acknowledged nothing (fixed? then remove it): test=Known.Clean kind=tcp "
                         "state=CLOSE_WAIT reason=\"fixed upstream\"\n"),
              std::string::npos) << r.out;
    EXPECT_NE(r.out.find("closecheck: suppression " + supp + ":2 did not apply: no test that ran matches "
                         "test=NotRunHere.*\n"),
              std::string::npos) << r.out;
  };
  auto r = run("Known.Clean", flag("--closecheck_suppressions", supp));
  EXPECT_EQ(r.status, 0) << r.out;
  listed(r);

  r = run("Known.Clean", flag("--closecheck_suppressions", supp) + " --closecheck_fail_on_unused_suppressions");
  EXPECT_EQ(r.status, 1) << r.out;
  listed(r);
  EXPECT_NE(r.out.find(supp + ":1: Failure\nclosecheck: unused suppression "
                       "(--closecheck_fail_on_unused_suppressions): test=Known.Clean"),
            std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(supp + ":2: Failure"), std::string::npos) << r.out;

  r = run("Known.Clean", flag("--closecheck_suppressions", supp),
          env_var("CLOSECHECK_FAIL_ON_UNUSED_SUPPRESSIONS", "1"));
  EXPECT_EQ(r.status, 1) << r.out;
}

TEST_F(Suppressions, OneThatAppliesToNoTestThatRanNeverFails) {
  auto supp = file("other.supp", "test=NotRunHere.* kind=tcp\n");
  auto r = run("Known.Clean", flag("--closecheck_suppressions", supp) + " --closecheck_fail_on_unused_suppressions");
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("closecheck: suppressions: 0 used, 0 unused, 1 not applied\n"), std::string::npos)
      << r.out;
}

// Bad input: a message naming file:line, exit status 2 from gtest_main, no test run.
struct Bad {
  const char* name;
  std::string text;
  std::string message;  // after "closecheck: FILE:"
};

void PrintTo(const Bad& b, std::ostream* os) { *os << b.text; }

class BadFile : public Suppressions, public ::testing::WithParamInterface<Bad> {};

TEST_P(BadFile, IsAnErrorNamingFileAndLine) {
  auto supp = file("bad.supp", GetParam().text);
  auto r = run("Known.*", flag("--closecheck_suppressions", supp));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("closecheck: " + supp + ":" + GetParam().message), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("[ RUN      ]"), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(
    Suppressions, BadFile,
    ::testing::Values(
        Bad{"UnknownKey", "# fine\ntest=Known.* kind=tcp\ntest=Known.* frobnicate=1\n",
            "3: unknown key 'frobnicate' (known: test, kind, state, local, peer, target, opened_in, count, "
            "reason)"},
        Bad{"BadState", "test=Known.* state=CLOSED_WAIT\n",
            "1: unknown TCP state 'CLOSED_WAIT' (known, in any case: ESTAB, SYN_SENT, SYN_RECV, FIN_WAIT1, "
            "FIN_WAIT2, TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK, LISTEN, CLOSING, NEW_SYN_RECV)"},
        Bad{"BadKind", "\n\nkind=tpc\n", "3: unknown kind 'tpc' (known: file, directory, pipe,"},
        Bad{"BadGlob", "test=Known.* peer=127.0.0.[1:*\n",
            "1: bad glob '127.0.0.[1:*' for 'peer': its '[' has no closing ']'"},
        Bad{"NotKeyValue", "test=Known.* LISTEN\n", "1: expected key=value, got 'LISTEN'"},
        Bad{"KeyTwice", "state=LISTEN state=CLOSE_WAIT\n", "1: 'state' given twice"},
        Bad{"EmptyValue", "test=Known.* peer=\n", "1: empty value for 'peer'"},
        Bad{"UnclosedQuote", "test=Known.* reason=\"never closed\n",
            "1: the quoted value of 'reason' has no closing '\"'"},
        Bad{"BadCount", "test=Known.* count=0\n", "1: count wants a whole number of fds from 1, got '0'"},
        Bad{"SaysNothing", "reason=\"everything\"\n",
            "1: a suppression must say what it acknowledges: at least one of test, kind, state"},
        Bad{"StateOfANonTcpKind", "kind=pipe state=LISTEN\n",
            "1: state=LISTEN is a TCP state, and kind=pipe is not TCP"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST_F(Suppressions, AMissingFileIsAnError) {
  auto missing = dir_ + "/no-such.supp";
  auto r = run("Known.*", flag("--closecheck_suppressions", missing));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("closecheck: cannot read suppressions file '" + missing + "': No such file or directory\n"),
            std::string::npos) << r.out;
  r = run("Known.*", "", env_var("CLOSECHECK_SUPPRESSIONS", missing));
  EXPECT_EQ(r.status, 2) << r.out;
  r = run("Known.*", flag("--closecheck_suppressions", dir_));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("closecheck: cannot read suppressions file '" + dir_ + "': Is a directory\n"),
            std::string::npos) << r.out;
}

TEST_F(Suppressions, BadInlineFormsAreErrorsToo) {
  auto r = run("Known.*", "", env_var("CLOSECHECK_SUPPRESS", "test=Known.* state=LISTEN;state=nope"));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("closecheck: CLOSECHECK_SUPPRESS:2: unknown TCP state 'nope'"), std::string::npos) << r.out;
  r = run("Known.*", flag("--closecheck_suppress", "kind=pipe") + " " + flag("--closecheck_suppress", "kind=tpc"));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("closecheck: --closecheck_suppress:2: unknown kind 'tpc'"), std::string::npos) << r.out;
  r = run("Known.*", "", env_var("CLOSECHECK_FAIL_ON_UNUSED_SUPPRESSIONS", "yes"));
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_NE(r.out.find("closecheck: CLOSECHECK_FAIL_ON_UNUSED_SUPPRESSIONS wants 1 or 0, got 'yes'"),
            std::string::npos) << r.out;
}

}  // namespace
