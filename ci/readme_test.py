#!/usr/bin/env python3
"""ci/readme catches what it exists for: a cited line that no longer says what
the page quotes, a bare citation, a citation in a pasted block, and a
generated block whose run now prints something else (a moved line included).
Pages are written to a temporary folder; the program is the listener demo.

  readme_test.py BUILD_DIR
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "readme")
build = sys.argv[1]
failures = []


def run(command, text):
    with tempfile.TemporaryDirectory() as d:
        page = os.path.join(d, "page.md")
        with open(page, "w") as f:
            f.write(text)
        p = subprocess.run([sys.executable, README, command, "--build", build, page],
                           capture_output=True, text=True, timeout=120)
        with open(page) as f:
            return p.returncode, p.stderr, f.read()


def expect(name, text, status, *needles, command="check"):
    code, err, after = run(command, text)
    ok = code == status and all(n in err for n in needles)
    print("%s %s" % ("ok  " if ok else "FAIL", name))
    if not ok:
        failures.append(name)
        print("  exit %d, stderr:\n%s" % (code, err))
    return after


DEMO = "harness/test/listener_demo.cpp"
expect("a right quote passes", "See `%s:18` `ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);`.\n" % DEMO, 0)
expect("a quote over a range passes", "See `%s:21-23` `open_pipe(fds);`.\n" % DEMO, 0)
expect("a stale quote fails and says where the code went", "See `%s:17` `ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);`.\n" % DEMO,
       1, "listener_demo.cpp:17 does not say", "(that code is on line 11, 18, 30)")
expect("a bare citation fails", "As %s:18 shows.\n" % DEMO, 1, "is cited bare")
expect("a citation without its code fails", "As `%s:18` shows.\n" % DEMO, 1, "is cited without the code")
with open(os.path.join(HERE, "..", DEMO)) as f:
    length = len(f.read().splitlines())
expect("a line past the end fails", "See `%s:999` `x`.\n" % DEMO, 1, "has %d lines, not 999" % length)
expect("a citation shown as an example (a double-backtick span) is not checked",
       "Write `` `nosuch.cpp:3` `code` ``.\n", 0)
expect("a pasted block that cites a line fails", "```\n%s:21: Failure\n```\n" % DEMO, 1, "a code block cites")
block = "<!-- ci/readme: gtest harness/test/closecheck_listener_demo Demo.LeaksAPipeEnd -->\n```\n%s```\n<!-- end -->\n"
fresh = expect("update writes the block", block % "", 0, command="update")
expect("the updated block passes", fresh, 0)
expect("other numbers may differ", fresh.replace("fd 3 ", "fd 7 "), 0)
expect("a moved line fails", fresh.replace("listener_demo.cpp:21:", "listener_demo.cpp:20:"), 1, "now prints")
expect("a changed message fails", fresh.replace("leaked by this test", "left open"), 1, "now prints")
expect("a filter that runs nothing fails", block.replace("LeaksAPipeEnd", "NoSuchTest") % "", 1, "ran no test")
expect("an unknown kind fails", "<!-- ci/readme: frobnicate x -->\n```\n```\n<!-- end -->\n", 1, "unknown kind")
expect("an unclosed block fails", "<!-- ci/readme: gtest x y -->\n```\nstuff\n", 1, "is not followed by")
expect("a case kind outside a case fails", "<!-- ci/readme: mutant A.B -->\n```\n```\n<!-- end -->\n", 1,
       "belong in a case's README")
print("%d failure(s)" % len(failures))
sys.exit(1 if failures else 0)
