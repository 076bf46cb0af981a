#!/usr/bin/python3
"""The closecheck command's tests: one scenario per ctest test (cli/<scenario>).

usage: cli_test.py --closecheck PATH --programs DIR [--corpus PATH] SCENARIO
Every wait is bounded; the programs synchronise with pipes, never sleeps."""
import argparse
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"
TIMEOUT = 30
args = None


def fail(message):
    raise AssertionError(message)


def check(condition, message):
    if not condition:
        fail(message)


def closecheck(*argv, pass_fds=(), stdin=subprocess.DEVNULL, timeout=TIMEOUT):
    """Runs closecheck; returns (status, stdout, stderr)."""
    p = subprocess.run([args.closecheck, *argv], stdin=stdin, capture_output=True, text=True,
                       timeout=timeout, pass_fds=pass_fds)
    print("$ closecheck " + " ".join(argv))
    print(p.stdout[-20000:] + p.stderr + "(exit status %d)" % p.returncode)
    return p.returncode, p.stdout, p.stderr


def program(name):
    return os.path.join(args.programs, name)


def run_json(*argv, **kw):
    """closecheck run --json, the report in a file; returns (status, report, stdout)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        status, stdout, stderr = closecheck("run", "--json", "--output", out.name, *argv, **kw)
        text = out.read()
    print(text)
    return status, json.loads(text), stdout


def connection(stdout, name):
    """The line a test program printed: 'client fd 3  127.0.0.1:1 -> 127.0.0.1:2'."""
    m = re.search(r"^%s fd (\d+)  (\S+) -> (\S+)$" % name, stdout, re.M)
    check(m, "the program did not print its %s connection" % name)
    return int(m.group(1)), m.group(2), m.group(3)


# --- run ---------------------------------------------------------------------

def test_close_wait_leak():
    status, out, err = closecheck("run", "--", program("cli_close_wait_leak"))
    fd, local, peer = connection(out, "client")
    check(status == 1, "findings: exit status 1")
    line = "fd %d  socket tcp  %s -> %s  CLOSE_WAIT" % (fd, local, peer)
    check(re.search(r"^closecheck: pid \d+ \(cli_close_wait_\) exited holding 1 fd:$", err, re.M),
          "names the process that exited")
    check("closecheck:   " + line + "\n" in err, "the ss-like line: " + line)
    check("closecheck: 1 finding (1 process checked, 1 in CLOSE_WAIT)" in err, "the summary")


def test_json():
    status, report, out = run_json("--", program("cli_close_wait_leak"))
    fd, local, peer = connection(out, "client")
    check(status == 1 and report["status"] == 1, "status 1")
    check(report["exit"] == {"code": 0}, "the program's own exit")
    check(report["processes"] == 1 and report["ignored"] == 0, "counts")
    (f,) = report["findings"]
    check(f["when"] == "exit" and f["close_wait"] is True, "a CLOSE_WAIT leak at exit")
    check(f["fd"]["fd"] == fd and f["fd"]["kind"] == "socket" and f["fd"]["protocol"] == "tcp", "the fd")
    check(f["fd"]["local"] == local and f["fd"]["peer"] == peer and f["fd"]["state"] == "CLOSE_WAIT",
          "addresses and state")
    status, report, _ = run_json("--", program("cli_clean"))
    check(status == 0 and report["findings"] == [] and report["processes"] == 2, "clean JSON")


def test_clean():
    status, _, err = closecheck("run", "--", program("cli_clean"))
    check(status == 0, "a clean program: exit status 0")
    check(err.endswith("closecheck: no findings (2 processes checked)\n"), "the clean summary")


def test_child_holder():
    status, report, out = run_json("--", program("cli_child_holder"))
    fd, local, peer = connection(out, "server")
    check(status == 1, "findings: exit status 1")
    (f,) = report["findings"]
    check(f["when"] == "exit" and f["close_wait"], "the child exits holding it in CLOSE_WAIT")
    check(f["fd"]["fd"] == fd and f["fd"]["local"] == local and f["fd"]["peer"] == peer, "the server's socket")
    parent = f["inherited_from"]["pid"]
    check(parent != f["pid"] and f["inherited_from"]["command"] == "cli_child_holde", "inherited from the parent")
    status, _, err = closecheck("run", "--", program("cli_child_holder"))
    check(re.search(r"CLOSE_WAIT  \(inherited from pid \d+ \(cli_child_holde\), which closed it\)$", err, re.M),
          "the text report says where it came from")


def marked(path, text):
    """The line number of the first line of path containing text."""
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if text in line:
                return n
    fail("no %r in %s" % (text, path))


def close_wait_leak_site():
    """'common.h:N tcp_connection' and 'close_wait_leak.c:M main': the client's socket() and its caller."""
    return ("%s:%d tcp_connection" % (os.path.join(HERE, "common.h"), marked(os.path.join(HERE, "common.h"), "*client = socket(")),
            "%s:%d main" % (os.path.join(HERE, "close_wait_leak.c"),
                            marked(os.path.join(HERE, "close_wait_leak.c"), "tcp_connection(&listener")))


def test_open_site():
    status, out, err = closecheck("run", "--", program("cli_close_wait_leak"))
    site, caller = close_wait_leak_site()
    check(status == 1, "findings: exit status 1")
    check(re.search(r"^closecheck:     opened at %s\b" % re.escape(site), err, re.M), "the open site: " + site)
    check(re.search(r"^closecheck:       from %s$" % re.escape(caller), err, re.M), "its caller: " + caller)


def test_open_site_json():
    status, report, out = run_json("--", program("cli_close_wait_leak"))
    site, caller = close_wait_leak_site()
    (f,) = report["findings"]
    opened = f["fd"]["opened"]
    check(opened["site"].startswith(site), "the site: %s" % opened["site"])
    frames = [(fr["file"], fr["line"], fr["function"]) for fr in opened["frames"]]
    check(any("%s:%d %s" % fr == caller for fr in frames), "the caller among the frames: %s" % frames)
    check(all(fr["pc"].startswith("0x") and fr["module"] for fr in opened["frames"]), "pc and module of each frame")


def test_open_site_static():
    status, out, err = closecheck("run", "--", program("cli_close_wait_leak_static"))
    check(status == 1, "still a finding: exit status 1")
    check("closecheck:     opened at: unknown (statically linked: closecheck's recorder cannot be preloaded into it)\n"
          in err, "why there is no open site")


def test_open_site_stripped():
    status, out, err = closecheck("run", "--", program("cli_close_wait_leak_stripped"))
    check(status == 1, "still a finding: exit status 1")
    check(re.search(r"^closecheck:     opened at cli_close_wait_leak_stripped\+0x[0-9a-f]+\n", err, re.M),
          "the site as module+offset")
    check("closecheck:       (no symbols: cli_close_wait_leak_stripped is stripped)\n" in err,
          "why there is no file:line")


def test_open_sites_off():
    status, out, err = closecheck("run", "--open-sites", "off", "--", program("cli_close_wait_leak"))
    check(status == 1 and "CLOSE_WAIT" in err, "the finding")
    check("opened at" not in err, "no open site")


def test_ignore_opened_in():
    status, out, err = closecheck("run", "--ignore-opened-in", "*/common.h:*", "--", program("cli_close_wait_leak"))
    check(status == 0, "the only finding is ignored: exit status 0")
    check("closecheck: no findings (1 process checked, 1 ignored" in err, "counted as ignored")
    status, out, err = closecheck("run", "--ignore-opened-in", "*/elsewhere.c:*", "--", program("cli_close_wait_leak"))
    check(status == 1, "a glob that names another file ignores nothing")


def test_double_close():
    src = os.path.join(HERE, "double_close.c")
    status, report, out = run_json("--fail-on", "leaks", "--", program("cli_double_close"))
    check(status == 1 and report["findings"] == [], "a double close fails with --fail-on leaks; no fd finding")
    (d,) = report["double_closes"]
    for key, mark in (("closed_now", "site: second close"), ("closed_before", "site: first close"),
                      ("opened", "site: opened")):
        check(d[key]["site"].startswith("%s:%d main" % (src, marked(src, mark))), "%s: %s" % (key, d[key]["site"]))
    status, out, err = closecheck("run", "--fail-on", "leaks", "--", program("cli_double_close"))
    check(re.search(r"^closecheck: pid \d+ \(cli_double_clos\): double-close: close\(%d\) of an fd that was not "
                    r"open: closed twice$" % d["fd"], err, re.M), "the text report's heading")
    check("closecheck:     closed again at %s:%d main" % (src, marked(src, "site: second close")) in err, "the second close")
    check("closecheck: 1 finding (1 process checked, 0 in CLOSE_WAIT, 1 double close" in err, "the summary")
    # By default reported, not failed: bash and socat close fds twice on purpose.
    status, out, err = closecheck("run", "--", program("cli_double_close"))
    check(status == 0, "by default: reported, not failed")
    check("closecheck:     closed again at %s:%d main" % (src, marked(src, "site: second close")) in err,
          "reported all the same")
    check(err.endswith("closecheck: no findings (1 process checked; 1 double close above, not failing: "
                       "--fail-on leaks fails on them)\n"), "the summary says why it did not fail")


def test_python_leak():
    # CPython closes the leaked socket at interpreter shutdown, 5 ms after the
    # listener: --settle 0 reports it at the listener's close.
    status, report, out = run_json("--settle", "0", "--", PYTHON, os.path.join(HERE, "leak_socket.py"))
    fd, local, peer = connection(out, "client")
    check(status == 1, "findings: exit status 1")
    (f,) = report["findings"]
    check(f["when"] == "listener-close" and f["close_wait"], "CLOSE_WAIT when the server stopped")
    check(f["command"] == "python3" and f["listener"]["local"] == peer, "the listener it talked to")
    check(f["fd"]["fd"] == fd and f["fd"]["local"] == local, "the client's socket")


def test_ignore():
    status, _, err = closecheck("run", "--ignore", "*CLOSE_WAIT*", "--", program("cli_close_wait_leak"))
    check(status == 0 and "no findings (1 process checked, 1 ignored)" in err, "ignored by its line")
    status, _, err = closecheck("run", "--ignore=socket:*", "--", program("cli_close_wait_leak"))
    check(status == 0 and "1 ignored" in err, "ignored by its target")
    status, _, err = closecheck("run", "--ignore", "/etc/*", "--", program("cli_close_wait_leak"))
    check(status == 1, "a pattern that matches nothing ignores nothing")


def test_fail_on():
    leak = program("cli_close_wait_leak")
    file_leak = ["/bin/sh", "-c", "exec 7</etc/hostname"]
    cases = [("leaks", leak, 1), ("close-wait", leak, 1), ("none", leak, 0),
             ("leaks", file_leak, 1), ("close-wait", file_leak, 0), ("none", file_leak, 0)]
    for fail_on, prog, expected in cases:
        prog = prog if isinstance(prog, list) else [prog]
        status, _, _ = closecheck("run", "--fail-on", fail_on, "--", *prog)
        check(status == expected, "--fail-on %s: expected %d, got %d" % (fail_on, expected, status))


def test_exit_code():
    for script, expected in [("exit 3", 3), ("kill -TERM $$", 143), ("exec 7</etc/hostname; exit 4", 4)]:
        status, _, _ = closecheck("run", "--", "/bin/sh", "-c", script)
        check(status == expected, "%r: expected %d, got %d" % (script, expected, status))


def test_inherited_from_caller():
    # An fd the caller passes down (like stdio) is not the program's leak.
    r, w = os.pipe()
    try:
        status, _, err = closecheck("run", "--", "/bin/sh", "-c", "true", pass_fds=(r, w))
    finally:
        os.close(r)
        os.close(w)
    check(status == 0 and "no findings" in err, "the caller's fds are the baseline")


def test_signal():
    # SIGTERM sent to closecheck reaches the program; closecheck passes its death on.
    r, w = os.pipe()
    p = subprocess.Popen([args.closecheck, "run", "--", "/bin/sh", "-c", "echo ready; exec cat"],
                         stdin=r, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    os.close(r)
    try:
        ready, _, _ = select.select([p.stdout], [], [], TIMEOUT)
        check(ready and p.stdout.readline() == "ready\n", "the program started")
        p.send_signal(signal.SIGTERM)
        status = p.wait(TIMEOUT)
    finally:
        os.close(w)
        if p.poll() is None:
            p.kill()
            p.wait()
    print(p.stderr.read())
    check(status == 128 + signal.SIGTERM, "the program's death by SIGTERM: got %d" % status)


def close_trap(trap, *argv):
    """closecheck run --json with CLOSECHECK_CLOSE_TRAP=trap (None: unset): (process, report or None)."""
    env = {k: v for k, v in os.environ.items() if k != "CLOSECHECK_CLOSE_TRAP"}
    if trap is not None:
        env["CLOSECHECK_CLOSE_TRAP"] = trap
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        p = subprocess.run([args.closecheck, "run", "--json", "--output", out.name, *argv], env=env,
                           capture_output=True, text=True, timeout=TIMEOUT)
        text = out.read()
    print("$ CLOSECHECK_CLOSE_TRAP=%s closecheck run --json %s\n%s%s(exit status %d)"
          % (trap, " ".join(argv), p.stderr, text, p.returncode))
    return p, json.loads(text) if text else None


# A Python server whose session is in CLOSE_WAIT with the EOF read (l: the
# listener, s: the session); it prints the session as "server fd N  L -> P".
SESSION_IN_CLOSE_WAIT = ("import os, socket\n"
                         "l = socket.create_server(('127.0.0.1', 0))\n"
                         "c = socket.create_connection(l.getsockname())\n"
                         "s, _ = l.accept()\n"
                         "c.close()\n"
                         "assert s.recv(1) == b''\n"
                         "print('server fd %d  %s:%d -> %s:%d' % ((s.fileno(),) + s.getsockname() + s.getpeername()), "
                         "flush=True)\n")


def test_close_trap():
    # How a listener's close is seen (docs/cli.md, "How it works"): in the
    # kernel where it can be (bpf), else the seccomp filter that stops every
    # close(2); CLOSECHECK_CLOSE_TRAP forces either.
    p, report = close_trap("bpf", "--", "/bin/true")
    in_kernel = p.returncode == 0
    if in_kernel:
        check(report["close_trap"] == "bpf", "forced: the in-kernel trap")
    else:
        check(p.returncode == 2 and p.stderr.startswith("closecheck: CLOSECHECK_CLOSE_TRAP=bpf: "),
              "forced where it cannot be: closecheck's own error, and why")
        print("NOTE: no in-kernel close trap on this machine: " + p.stderr.strip())
    p, report = close_trap(None, "--", "/bin/true")
    check(p.returncode == 0 and report["close_trap"] == ("bpf" if in_kernel else "seccomp"),
          "by default the in-kernel trap where it is available, else the seccomp one")
    p, report = close_trap("seccomp", "--", "/bin/true")
    check(p.returncode == 0 and report["close_trap"] == "seccomp", "forced: the seccomp trap")
    p, report = close_trap("sometimes", "--", "/bin/true")
    check(p.returncode == 2 and p.stderr.count("\n") == 1 and "CLOSECHECK_CLOSE_TRAP" in p.stderr,
          "a value that is none of them: one line, status 2")
    if not in_kernel:
        return
    # Only the in-kernel trap sees a listener closed other than by close(2):
    # here dup2(2) over it, with a session in CLOSE_WAIT whose EOF was read.
    script = (SESSION_IN_CLOSE_WAIT +
              "os.dup2(os.open(os.devnull, os.O_RDONLY), l.fileno())\n"
              "s.close()\n")
    p, report = close_trap("bpf", "--settle", "0", "--", PYTHON, "-c", script)
    fd, local, peer = connection(p.stdout, "server")
    (f,) = report["findings"]
    check(f["when"] == "listener-close" and f["fd"]["fd"] == fd and f["fd"]["local"] == local and
          f["listener"]["local"] == local and f["listener"]["side"] == "server", "the session, at dup2's close")
    check(isinstance(f["fate"], dict) and f["fate"]["closed_after_ms"] < 1000, "closed by the program right after")


def test_listener_closed_by_thread():
    # A listener closed by another thread than the one that set it up: only
    # that thread stops (either trap), and the session in CLOSE_WAIT is found.
    script = (SESSION_IN_CLOSE_WAIT + "import threading\n"
              "t = threading.Thread(target=l.close)\n"
              "t.start()\n"
              "t.join()\n"
              "s.close()\n")
    status, report, out = run_json("--settle", "0", "--", PYTHON, "-c", script)
    fd, local, peer = connection(out, "server")
    (f,) = report["findings"]
    check(status == 1 and f["when"] == "listener-close" and f["fd"]["fd"] == fd and f["fd"]["peer"] == peer and
          f["listener"]["local"] == local and f["listener"]["side"] == "server", "the session, at the thread's close")
    check(isinstance(f["fate"], dict) and f["fate"]["closed_after_ms"] < 1000, "closed by the program right after")


def corpus(expected):
    check(args.corpus, "--corpus PATH is required")
    # The corpus program's Server closes its session when it is destroyed,
    # right after its listener: --settle 0 reports every session in
    # CLOSE_WAIT at the listener's close, without waiting to see it closed.
    status, report, out = run_json("--settle", "0", "--", args.corpus)
    variant = "broken" if expected else "fixed"
    check(re.search(r"close-wait-server\s+%s\s+%s" % (variant, "leaks as expected" if expected else "clean"), out),
          "the corpus program's own verdict")
    if not expected:
        check(status == 0 and report["findings"] == [], "the fixed variant leaves nothing")
        return
    check(status == 1, "the broken variant: findings")
    (f,) = report["findings"]
    check(f["when"] == "listener-close" and f["close_wait"], "a session socket in CLOSE_WAIT at server stop")
    check(f["fd"]["local"] == f["listener"]["local"], "accepted on that listener")
    check(f["fd"]["line"] in out, "the very socket the corpus program reports: " + f["fd"]["line"])
    check(f["fate"]["closed_after_ms"] < 1000, "closed by the Server's destructor right after")
    # By default closecheck gives a session --settle (1 s) to be closed after
    # its listener: this one was, so it is settled, not a finding.
    status, report, out = run_json("--", args.corpus)
    check(status == 0 and report["findings"] == [] and report["settled"] == 1, "settled by default")


def test_corpus_broken():
    corpus(True)


def test_corpus_fixed():
    corpus(False)


def suite(label):
    """This project's own suite, one label of it, run by ctest under closecheck:
    (report, ctest's output). Every test must pass under closecheck too."""
    check(args.build, "--build DIR is required")
    status, report, out = run_json("--", "ctest", "--test-dir", args.build, "-L", "^%s$" % label,
                                   "--label-exclude", "^(cli|report)$", "-j2", "--output-on-failure",
                                   timeout=1200)
    check(report["exit"] == {"code": 0}, "every %s test passes under closecheck: %r" % (label, report["exit"]))
    check(re.search(r"^100% tests passed, 0 tests failed out of \d+$", out, re.M), "ctest's summary")
    return report


def test_ctest_fixed():
    # Every fixed variant closes what it opens: nothing to report.
    report = suite("fixed")
    check(report["findings"] == [] and report["status"] == 0, "no findings in the fixed variants")
    check(report["processes"] > 100, "ctest and every test binary were followed")


def test_ctest_broken():
    # The broken variants reclaim their leaks after asserting them, except
    # inherited-socket's: its helper (cat) got the server's sockets across
    # exec and keeps them. Every finding must be a leak of a broken variant.
    report = suite("broken")
    check(report["findings"], "the broken variants' leaks that outlive their tests are found")
    for f in report["findings"]:
        owner = f.get("inherited_from", {}).get("exe", "") if f["command"] == "cat" else f["exe"]
        check(re.search(r"/cases/[^/]+/[^/]+-broken-[^/]+$", owner), "a broken variant's leak: %r" % f)
        check(f["type"] in ("close-wait", "held-after-close"), "a leak, not a hygiene note: %r" % f)


# --- watch -------------------------------------------------------------------

class Lines:
    """Reads a pipe line by line with a deadline."""

    def __init__(self, stream):
        self.stream, self.buffer = stream, b""

    def next(self, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.stream], [], [], max(left, 0))
            check(ready, "no line within %d s" % timeout)
            chunk = os.read(self.stream.fileno(), 4096)
            check(chunk, "EOF")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        print(line.decode())
        return line.decode()


def fds_column(header, line):
    return int(line.split()[header.split().index("fds")])


def test_watch_growth():
    # grow runs first and says it is ready, so that no sample sees the dynamic
    # loader's passing fds; then each step waits for a sample that shows it.
    commands_r, commands_w = os.pipe()
    acks_r, acks_w = os.pipe()
    grow = subprocess.Popen([program("cli_grow"), str(commands_r), str(acks_w)],
                            pass_fds=(commands_r, acks_w), stdin=subprocess.DEVNULL)
    os.close(commands_r)
    os.close(acks_w)
    p = None

    def ack(expected):
        ready, _, _ = select.select([acks_r], [], [], TIMEOUT)
        check(ready and os.read(acks_r, 1) == expected, "grow answered %r" % expected)

    try:
        ack(b"r")
        p = subprocess.Popen([args.closecheck, "watch", "--interval", "10", "--pid", str(grow.pid)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = Lines(p.stdout)
        header = lines.next()
        base = fds_column(header, lines.next())
        steps = 5
        for i in range(1, steps + 1):
            os.write(commands_w, b"g")
            ack(b"g")
            while fds_column(header, lines.next()) != base + 3 * i:  # until a sample sees it
                pass
        os.close(commands_w)
        commands_w = -1
        grow.wait(TIMEOUT)  # watch stops when it exits
        p.wait(TIMEOUT)
        rest = (lines.buffer + p.stdout.read()).decode()
        print(rest)
    finally:
        if commands_w >= 0:
            os.close(commands_w)
        os.close(acks_r)
        for child in (grow, p):
            if child and child.poll() is None:
                child.kill()
                child.wait()
    check(p.returncode == 1, "growth flagged: exit status 1, got %d" % p.returncode)
    m = re.search(r"GROWTH: fds grew monotonically (\d+) -> (\d+) \(\+15\): [\d.]+ fds/s, [\d.]+ fds per sample", rest)
    check(m and int(m.group(1)) == base, "the growth and its rate")
    check("growing: socket +10, epoll +5" in rest, "by kind: the event loop signature")


def test_watch_exit_code():
    status, out, _ = closecheck("watch", "--interval", "10", "--", "/bin/sh", "-c", "exit 3")
    check(status == 3 and "closecheck watch: " in out, "the program's failure is passed through")


def test_watch_flat():
    r, w = os.pipe()
    try:
        status, out, err = closecheck("watch", "--samples", "4", "--interval", "10", "--", "/bin/cat", stdin=r)
    finally:
        os.close(r)
        os.close(w)
    check(status == 0 and err == "", "no growth: exit status 0")
    lines = out.splitlines()
    check(len(lines) == 1 + 4 + 2 and lines[0].split()[:3] == ["time_s", "procs", "fds"], "a header and 4 rows")
    check("closecheck watch: 4 samples over" in out and "no monotonic growth" in out, "the verdict")


def test_watch_pid():
    r, w = os.pipe()
    target = subprocess.Popen(["/bin/cat"], stdin=r)
    os.close(r)
    try:
        status, out, _ = closecheck("watch", "--pid", str(target.pid), "--samples", "3", "--interval", "10")
        check(target.poll() is None, "watching leaves the process alone")
    finally:
        os.close(w)
        target.wait(TIMEOUT)
    check(status == 0 and len(out.splitlines()) == 1 + 3 + 2, "3 samples, then the verdict")


def test_watch_short_program():
    # Shorter than its interval: a sample at its exec and one at its exit.
    status, out, _ = closecheck("watch", "--", "/bin/sh", "-c", "exit 0")
    lines = out.splitlines()
    check(status == 0, "no growth, exit status 0")
    check(lines[1].endswith("  (exec)") and any(l.endswith("  (exit)") for l in lines[2:]), "exec and exit rows")
    check(re.search(r"^closecheck watch: at exit \([\d.]+ s\): (\d+) fds, \1 at exec", out, re.M),
          "at exit it holds what it started with")


def test_watch_released_at_exit():
    # Growth while it runs; CPython closes the loops at shutdown: still flagged,
    # and the exit row says they were released.
    status, out, _ = closecheck("watch", "--interval", "200", "--", PYTHON, os.path.join(HERE, "per_loop_leak.py"),
                                timeout=60)
    check(status == 1, "growth flagged: exit status 1, got %d" % status)
    m = re.search(r"growing: socket \+(\d+), epoll \+(\d+)", out)
    check(m and int(m.group(1)) == 2 * int(m.group(2)) and int(m.group(2)) >= 3, "a socket pair and an epoll per loop")
    check(re.search(r"released before exit: fds \d+ -> \d+", out), "released before exit")


def test_docs_examples():
    """Every `$ closecheck run` example in docs/cli.md whose program is here
    (./cli_*, python3 SCRIPT, /bin/sh -c) prints what the page shows, numbers
    aside (pids, ports, inodes, milliseconds), and `$ echo $?` after it
    shows its exit status."""
    with open(os.path.join(HERE, "..", "..", "..", "docs", "cli.md")) as f:
        doc = f.read()
    number = re.compile(r"\d+")
    checked = 0
    for block in re.findall(r"^```\n(.*?)^```", doc, re.S | re.M):
        commands = []
        for line in block.splitlines():
            if line.startswith("$ "):
                commands.append((line[2:], []))
            elif commands:
                commands[-1][1].append(line)
        last = None
        for command, expected in commands:
            if command == "echo $?":
                check(last is None or expected == [str(last)], "%r: $? %r, got %r" % (previous, expected, last))
                continue
            previous, last = command, None
            argv = shlex.split(command)
            if argv[:2] != ["closecheck", "run"] or "--json" in argv or "--" not in argv:
                continue
            program = argv.index("--") + 1
            if argv[program].startswith("./cli_"):
                cwd = args.programs
            elif argv[program] == "python3":
                argv[program], cwd = PYTHON, HERE
            elif argv[program] == "/bin/sh":
                cwd = HERE
            else:
                continue
            p = subprocess.run([args.closecheck] + argv[1:], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=TIMEOUT)
            print("$ " + command + "\n" + p.stdout + "(exit status %d)" % p.returncode)
            # The page shows the source tree as /src/closecheck, and a build
            # with optimisation (a Debug build inlines nothing, and its code
            # offsets differ).
            root = os.path.realpath(os.path.join(HERE, "..", "..", "..")) + "/"
            def norm(line):
                line = re.sub(r"\+0x[0-9a-f]+", "+0xN", line.replace(root, "/src/closecheck/"))
                return number.sub("N", line.replace(" (inlined)", ""))
            got = [norm(l) for l in p.stdout.splitlines()]
            want = [norm(l) for l in expected]
            check(got == want, "%r prints, numbers aside:\n%s\nnot what docs/cli.md shows:\n%s"
                  % (command, "\n".join(got), "\n".join(want)))
            last = p.returncode
            checked += 1
    check(checked >= 12, "the examples were found: %d" % checked)
    # The panel's sizes as the README and this page give them.
    listed = subprocess.run([PYTHON, os.path.join(HERE, "real_world.py"), "list"], capture_output=True,
                            text=True, check=True).stdout.strip().split(";")
    real = sum(n.startswith("real-world/") for n in listed)
    planted = sum(n.startswith("planted/") for n in listed)
    with open(os.path.join(HERE, "..", "..", "..", "README.md")) as f:
        readme = " ".join(f.read().split())
    text = " ".join(doc.split())
    for where, claim in [(readme, "a panel of %d ordinary invocations" % real),
                         (readme, "and %d planted programs" % planted),
                         (text, "runs closecheck on %d ordinary invocations" % real),
                         (text, "runs %d planted programs" % planted)]:
        check(claim in where, "the docs say %r" % claim)


# --- bad input: one clear line on stderr, exit status 2 ------------------------

BAD_INPUT = {
    "no-command": [],
    "unknown-command": ["frobnicate"],
    "no-program": ["run"],
    "no-program-after-dashes": ["run", "--json", "--"],
    "missing-program": ["run", "--", "/nonexistent/program"],
    "program-not-in-path": ["run", "--", "closecheck-no-such-program"],
    "not-executable": ["run", "--", "/etc/hostname"],
    "unknown-option": ["run", "--frobnicate", "--", "/bin/true"],
    "bad-fail-on": ["run", "--fail-on", "sometimes", "--", "/bin/true"],
    "missing-value": ["run", "--ignore"],
    "bad-settle": ["run", "--settle", "1s", "--", "/bin/true"],
    "negative-settle": ["run", "--settle=-5", "--", "/bin/true"],
    "bad-open-sites": ["run", "--open-sites", "maybe", "--", "/bin/true"],
    "too-many-frames": ["run", "--frames", "100", "--", "/bin/true"],
    "watch-no-program": ["watch", "--interval", "10"],
    "watch-unknown-option": ["watch", "--every", "10", "--", "/bin/true"],
    "watch-missing-program": ["watch", "--", "/nonexistent/program"],
    "watch-bad-interval": ["watch", "--interval", "0", "--", "/bin/true"],
    "watch-interval-not-a-number": ["watch", "--interval", "10ms", "--", "/bin/true"],
    "watch-pid-and-program": ["watch", "--pid", "1", "--", "/bin/true"],
    "watch-pid-not-a-number": ["watch", "--pid", "abc"],
    "watch-no-such-pid": ["watch", "--pid", "4194304"],
    "watch-kernel-thread": ["watch", "--pid", "2"],
}


def bad_input(name):
    status, out, err = closecheck(*BAD_INPUT[name])
    check(status == 2, "exit status 2, got %d" % status)
    check(out == "", "nothing on stdout")
    check(err.count("\n") == 1 and err.startswith("closecheck: "), "one line on stderr: %r" % err)


def main():
    global args
    parser = argparse.ArgumentParser()
    parser.add_argument("--closecheck", required=True)
    parser.add_argument("--programs", required=True)
    parser.add_argument("--corpus")
    parser.add_argument("--build")
    parser.add_argument("scenario")
    args = parser.parse_args()
    if args.scenario == "list":
        tests = [n[5:].replace("_", "-") for n in sorted(globals()) if n.startswith("test_")]
        print(";".join(tests + ["bad-input/" + n for n in BAD_INPUT]))
        return 0
    if args.scenario.startswith("bad-input/"):
        bad_input(args.scenario[len("bad-input/"):])
    else:
        globals()["test_" + args.scenario.replace("-", "_")]()
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
