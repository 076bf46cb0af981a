#!/usr/bin/env python3
"""The cost of `closecheck run` on busy programs (docs/performance.md, "closecheck run").

Each workload runs plain, under `closecheck run` with its default close trap
(the in-kernel one where the machine allows it), under the seccomp close trap
(CLOSECHECK_CLOSE_TRAP=seccomp, the fallback and the path before it), under
`closecheck run --open-sites off` with its default trap (what the open-site
recorder costs), and under
`valgrind --tool=none --track-fds=yes --trace-children=yes`. The modes are
interleaved (one run of each per round, the order rotated every round), and the
table gives the median of --rounds rounds of the wall time and of the child CPU
time (user + sys from wait4: the program and everything it started, closecheck
and valgrind included), which another process's load on the machine disturbs less.

usage: cli_bench.py --closecheck PATH --close-heavy PATH --gtest PATH
                    [--rounds N] [--small] [--modes plain,closecheck,...] [--workloads a,b]
--small: tiny sizes, one round, to check that every workload and mode runs (ctest -L bench).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MODES = ["plain", "closecheck", "seccomp", "no-sites", "valgrind"]


def git_repo(root, files):
    """A repository of `files` committed files, 10 per directory, 20 of them modified and 10 untracked."""
    repo = os.path.join(root, "repo")
    os.makedirs(repo)
    env = dict(os.environ, GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@example.com",
               GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@example.com")
    subprocess.run(["git", "init", "-q", repo], check=True, env=env)
    for i in range(files):
        d = os.path.join(repo, f"dir{i // 100}", f"sub{i // 10 % 10}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"file{i}.txt"), "w") as f:
            f.write(f"line {i}\n" * 20)
    subprocess.run(["git", "-C", repo, "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", repo, "commit", "-q", "-m", "files"], check=True, env=env)
    for i in range(0, min(files, 200), 10):
        with open(os.path.join(repo, f"dir{i // 100}", f"sub{i // 10 % 10}", f"file{i}.txt"), "a") as f:
            f.write("changed\n")
    for i in range(10):
        with open(os.path.join(repo, f"untracked{i}.txt"), "w") as f:
            f.write("new\n")
    return repo


def c_project(root, sources):
    """A small C project: `sources` translation units and a Makefile."""
    project = os.path.join(root, "project")
    os.makedirs(project)
    for i in range(sources):
        with open(os.path.join(project, f"unit{i}.c"), "w") as f:
            f.write("#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n")
            for j in range(30):
                f.write(f"int unit{i}_f{j}(const char* s) {{ char b[64]; snprintf(b, sizeof b, \"%s{j}\", s); "
                        f"return (int)strlen(b) * {j + 1}; }}\n")
    with open(os.path.join(project, "main.c"), "w") as f:
        f.write("int unit0_f0(const char*);\nint main(void) { return unit0_f0(\"x\") == 2 ? 0 : 1; }\n")
    objects = " ".join(f"unit{i}.o" for i in range(sources)) + " main.o"
    with open(os.path.join(project, "Makefile"), "w") as f:
        f.write(f"prog: {objects}\n\t$(CC) -o $@ $^\n%.o: %.c\n\t$(CC) -O1 -c -o $@ $<\n")
    return project


def workloads(args, root):
    small = args.small
    repo = git_repo(root, 60 if small else 600)
    project = c_project(root, 3 if small else 8)
    loops = 2 if small else 10
    return {
        "close-heavy": ([args.close_heavy] + (["200", "500"] if small else ["20000", "50000"]), None,
                        f"{'200' if small else '20,000'} loopback connections + {'500' if small else '50,000'} "
                        "file open/close"),
        "git-status": (["/bin/sh", "-c", f"for i in $(seq {loops}); do git status --porcelain >/dev/null; done"],
                       repo, f"`git status` x{loops} in a repository of {60 if small else 600} files"),
        "gtest": ([args.gtest], None, os.path.basename(args.gtest)),
        "make-j2": (["make", "-B", "-s", "-j2"], project,
                    f"`make -B -j2` of {3 if small else 8} C files + main"),
    }


def command(mode, argv, closecheck):
    if mode == "plain":
        return argv, {}
    if mode == "valgrind":
        return ["valgrind", "--tool=none", "--track-fds=yes", "--trace-children=yes", "-q"] + argv, {}
    cc = [closecheck, "run", "--fail-on", "none"]
    if mode == "no-sites":
        cc += ["--open-sites", "off"]
    env = {"CLOSECHECK_CLOSE_TRAP": "seccomp" if mode == "seccomp" else "auto"}
    return cc + ["--"] + argv, env


def run_once(mode, argv, cwd, closecheck, timeout):
    cmd, extra = command(mode, argv, closecheck)
    env = dict(os.environ, **extra)
    with tempfile.TemporaryFile() as err_file:
        start = time.monotonic()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=err_file)
        killer = threading.Timer(timeout, p.kill)  # bounded: a hung run is killed and fails below
        killer.start()
        # wait4 for this child's rusage: the program and everything it waited for.
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.monotonic() - start
        killer.cancel()
        p.returncode = os.waitstatus_to_exitcode(status)
        err_file.seek(0)
        err = err_file.read().decode(errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"cli_bench: {mode}: {' '.join(cmd)} exited {p.returncode}:\n{err[-2000:]}")
    if mode != "plain" and mode != "valgrind" and "closecheck: no findings" not in err:
        raise SystemExit(f"cli_bench: {mode}: closecheck reported something on {argv[0]}:\n{err[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--closecheck", required=True)
    ap.add_argument("--close-heavy", required=True)
    ap.add_argument("--gtest", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--workloads", default="")
    args = ap.parse_args()
    for name in ("closecheck", "close_heavy", "gtest"):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    modes = args.modes.split(",")
    if "valgrind" in modes and not shutil.which("valgrind"):
        print("cli_bench: no valgrind here: that column is left out", file=sys.stderr)
        modes.remove("valgrind")
    rounds = 1 if args.small else args.rounds
    trap = subprocess.run([args.closecheck, "run", "--json", "--", "/bin/true"], stderr=subprocess.PIPE,
                          text=True, check=True).stderr
    trap = json.loads(trap)["close_trap"]
    with tempfile.TemporaryDirectory(prefix="cli_bench.") as root:
        work = workloads(args, root)
        chosen = args.workloads.split(",") if args.workloads else list(work)
        results = {}
        for w in chosen:
            argv, cwd, _ = work[w]
            run_once("plain", argv, cwd, args.closecheck, 600)  # warm the caches
            for r in range(rounds):
                order = modes[r % len(modes):] + modes[:r % len(modes)]
                for m in order:
                    wall, cpu = run_once(m, argv, cwd, args.closecheck, 600)
                    results.setdefault((w, m), []).append((wall, cpu))
                    print(f"# {w} {m} round {r + 1}: {wall:.3f} s wall, {cpu:.3f} s cpu", file=sys.stderr, flush=True)
        with open("/proc/loadavg") as f:
            load = " ".join(f.read().split()[:3])
        print(f"{rounds} round(s), medians; load average at the end: {load}; {os.cpu_count()} CPUs; "
              f"closecheck's default close trap here: {trap}\n")
        print("| workload | " + " | ".join(modes) + " |")
        print("|---|" + "---|" * len(modes))
        for w in chosen:
            base_wall = statistics.median(x[0] for x in results[(w, "plain")]) if "plain" in modes else None
            base_cpu = statistics.median(x[1] for x in results[(w, "plain")]) if "plain" in modes else None
            cells = []
            for m in modes:
                wall = statistics.median(x[0] for x in results[(w, m)])
                cpu = statistics.median(x[1] for x in results[(w, m)])
                cell = f"{wall:.3f} s / {cpu:.3f} s cpu"
                if base_wall and m != "plain":
                    cell += f" (×{wall / base_wall:.2f} / ×{cpu / base_cpu:.2f})" if base_cpu else f" (×{wall / base_wall:.2f})"
                cells.append(cell)
            print(f"| {w} | " + " | ".join(cells) + " |")
        print()
        for w in chosen:
            print(f"- {w}: {work[w][2]}")


if __name__ == "__main__":
    main()
