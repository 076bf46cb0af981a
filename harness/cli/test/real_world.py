#!/usr/bin/python3
"""closecheck run on programs nobody here wrote, wrapped the way people wrap them.

usage: real_world.py --closecheck PATH --programs DIR SCENARIO
       real_world.py list          (the scenarios, for CMake)

real-world/<name>: an ordinary, well-behaved invocation of Debian's programs
(shells, make, cmake, git, tar, xargs, Python's subprocess, multiprocessing and
asyncio, nginx, curl, wget, socat, openssl, libwebsockets' test apps) must get a
clean verdict: exit status 0 and no finding.
planted/<name>: a leak planted in a small C, Python or shell program must be
reported with the exact finding: its type, the fd's kind and TCP state, its
peer, and which process held it.

Servers listen on loopback only. Scenarios that need a fixed port run in a
network namespace of their own (only `lo`, up). Every wait is bounded."""
import argparse
import ctypes
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

PYTHON = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))
TIMEOUT = 120
args = None
work = None  # a temporary directory for the scenario


def check(condition, message):
    if not condition:
        raise AssertionError(message)


# --- running closecheck ------------------------------------------------------

def closecheck(argv, *options, stdin=subprocess.DEVNULL, env=None, cwd=None):
    """closecheck run --json [options] -- argv: (status, report, stdout)."""
    report_path = os.path.join(work, "report.json")
    command = [args.closecheck, "run", "--json", "--output", report_path, *options, "--", *argv]
    print("$ " + " ".join(command), flush=True)
    p = subprocess.run(command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=TIMEOUT, env=env, cwd=cwd or work)
    print(p.stdout[-3000:] + p.stderr[-3000:] + "(exit status %d)" % p.returncode)
    with open(report_path) as f:
        report = json.load(f)
    # The same run as people read it: the text report.
    for finding in report["findings"]:
        print("finding: %s %s pid %d (%s): %s -- %s" % (finding["type"], finding["when"], finding["pid"],
                                                       finding["command"], finding["fd"]["line"], finding["why"]))
    return p.returncode, report, p.stdout


def clean(argv, *options, **kw):
    """A well-behaved program: no finding, exit status 0, its own exit 0."""
    status, report, out = closecheck(argv, *options, **kw)
    check(report["exit"] == {"code": 0}, "the program itself failed: %r" % report["exit"])
    check(report["findings"] == [], "no findings expected, got %d" % len(report["findings"]))
    check(status == 0, "exit status 0, got %d" % status)
    return report, out


def shell(script, *options, **kw):
    return clean(["/bin/sh", "-c", script], *options, **kw)


def bash(script, *options, **kw):
    return clean(["/bin/bash", "-c", script], *options, **kw)


def write(name, text, mode=0o644):
    path = os.path.join(work, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def private_network():
    """This test process (and what it starts) in a network namespace of its
    own with only loopback: fixed ports cannot collide with another test."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)


WAIT_FOR_PORT = r'''
# Waits (10 s at most) until something listens on port $1, without
# connecting: a one-shot server must keep its one accept for the client.
for i in $(seq 200); do
  [ -n "$(ss -Hltn "sport = :$1")" ] && exit 0
  sleep 0.05
done
echo "nothing listens on port $1" >&2
exit 1
'''  # a wrapper script's bounded wait for a server it started


def wait_for_port_script():
    return write("wait-for-port", "#!/bin/bash\n" + WAIT_FOR_PORT, 0o755)


def script_on_loopback(body):
    """A bash script the way people write one around servers: start them in
    the background, ./wait-for-port each, run the clients, stop the servers.
    In a network namespace of its own, so that fixed ports cannot collide."""
    wait_for_port_script()
    private_network()
    clean([write("run.sh", "#!/bin/bash\nset -e\ncd %s\n%s" % (work, body), 0o755)])


def make_certificate():
    key, cert = os.path.join(work, "key.pem"), os.path.join(work, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-subj", "/CN=localhost", "-days", "1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=60)
    return key, cert


# --- real-world: shells and coreutils ----------------------------------------

def test_sh_command_substitution_and_pipeline():
    shell('x=$(echo hello); y=$(printf "%s\\n" "$x" | tr a-z A-Z); [ "$y" = HELLO ]')


def test_bash_process_substitution():
    bash('diff <(printf "a\\nb\\n") <(printf "a\\nb\\n") && cat <(echo one) | sort')


def test_bash_script_file():
    # bash keeps the script open on fd 255 while it runs.
    script = write("script.sh", "#!/bin/bash\nset -e\nfor i in 1 2 3; do\n  echo \"$i\" | wc -c >/dev/null\ndone\n"
                   "( cd / && ls >/dev/null )\ncat <<EOF >/dev/null\nhere\nEOF\n", 0o755)
    clean([script])


def test_sh_background_jobs_and_wait():
    shell('(echo a) & (echo b) & wait; echo done')


def test_xargs_parallel():
    shell('printf "%s\\n" a b c d e f | xargs -P2 -n1 sh -c \'echo "$0" | tr a-f A-F\' | sort | tr -d "\\n"')


def test_tar_gzip_with_directory():
    write("tree/a/one.txt", "one\n")
    write("tree/b/two.txt", "two\n" * 1000)
    shell("tar -czf t.tgz -C tree . && mkdir out && tar -xzf t.tgz -C out && cmp tree/b/two.txt out/b/two.txt")


def test_tar_xz_pipeline():
    write("tree/file.txt", "x\n" * 5000)
    shell("tar -cf - -C tree . | xz -1 | xz -d | tar -tf - | grep -q file.txt")


def test_find_sort_head_sigpipe():
    # head exits early; the writers upstream die of SIGPIPE or see EPIPE.
    shell("find /usr/share -maxdepth 2 | sort | head -n 3 >/dev/null")


# --- real-world: build tools and git ------------------------------------------

C_PROJECT = {
    "src/a.c": "int a(void) { return 1; }\n",
    "src/b.c": "int b(void) { return 2; }\n",
    "src/main.c": "int a(void); int b(void);\nint main(void) { return a() + b() - 3; }\n",
}


def c_project():
    for name, text in C_PROJECT.items():
        write("project/" + name, text)
    return os.path.join(work, "project")


def test_make_parallel():
    project = c_project()
    write("project/Makefile", "OBJ = src/a.o src/b.o src/main.o\nall: app\n\t./app\napp: $(OBJ)\n\t$(CC) -o $@ $(OBJ)\n")
    clean(["make", "-j2", "-C", project])


def test_make_recursive_jobserver():
    project = c_project()
    write("project/Makefile", "all:\n\t$(MAKE) -C src\n\t$(MAKE) -C src check\n")
    write("project/src/Makefile", "app: a.o b.o main.o\n\t$(CC) -o $@ $^\ncheck: app\n\t./app\n")
    clean(["make", "-j2", "-C", project])


def test_cmake_configure_and_build():
    project = c_project()
    write("project/CMakeLists.txt", "cmake_minimum_required(VERSION 3.25)\nproject(p C)\n"
          "add_executable(app src/a.c src/b.c src/main.c)\n")
    shell("cmake -S project -B build -G Ninja >/dev/null && cmake --build build -j2 && ./build/app")


def test_git_init_commit_log():
    c_project()
    shell("cd project && git init -q && git add . && "
          "git -c user.name=t -c user.email=t@example.invalid commit -qm one && "
          "git log --oneline | head -n 1 && git status --short")


def test_git_clone_local():
    c_project()
    shell("cd project && git init -q && git add . && "
          "git -c user.name=t -c user.email=t@example.invalid commit -qm one && cd .. && "
          "git clone -q --no-local project copy && git -C copy log --oneline")


# --- real-world: Python -------------------------------------------------------

def test_python_print():
    clean([PYTHON, "-c", "print(1)"])


def pyenv_shim(name):
    """A shim the way pyenv writes them: a bash script that finds the real
    program and execs it (pyenv's own shims run `pyenv exec`, more bash)."""
    shims = os.path.join(work, "shims")
    write("shims/" + name, '#!/usr/bin/env bash\nset -e\n[ -n "$PYENV_DEBUG" ] && set -x\n'
          'program="${0##*/}"\nexport PYENV_ROOT="%s"\nfor dir in /usr/local/bin /usr/bin; do\n'
          '  if [ -x "$dir/$program" ]; then exec "$dir/$program" "$@"; fi\ndone\n'
          'echo "pyenv: $program: command not found" >&2\nexit 127\n' % shims, 0o755)
    return shims


def test_python_through_a_pyenv_shim():
    shims = pyenv_shim("python3")
    env = dict(os.environ, PATH=shims + ":" + os.environ["PATH"])
    clean(["python3", "-c", "import sys; print(sys.version_info[0])"], env=env)


def test_python_through_pyenv():
    """pyenv itself, where the machine has it (the stranger's laptop)."""
    pyenv = shutil.which("pyenv") or (os.path.expanduser("~/.pyenv/bin/pyenv")
                                       if os.path.exists(os.path.expanduser("~/.pyenv/bin/pyenv")) else None)
    if not pyenv:
        print("SKIP: pyenv is not installed here")
        sys.exit(77)
    root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=60).stdout.strip()
    env = dict(os.environ, PATH=os.path.join(root, "shims") + ":" + os.path.dirname(pyenv) + ":" + os.environ["PATH"])
    clean(["python3", "-c", "print(1)"], env=env)


def test_python_subprocess_pipes():
    clean([PYTHON, "-c", "import subprocess\n"
           "out = subprocess.run(['sh', '-c', 'cat; echo err >&2'], input=b'x', capture_output=True, check=True)\n"
           "assert out.stdout == b'x' and out.stderr == b'err\\n'\n"
           "p = subprocess.Popen(['tr', 'a', 'b'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
           "assert p.communicate(b'aaa')[0] == b'bbb'\n"])


def test_python_multiprocessing_pool():
    script = write("pool.py", "import multiprocessing\n\ndef square(x):\n    return x * x\n\n"
                   "if __name__ == '__main__':\n    for method in ('fork', 'spawn', 'forkserver'):\n"
                   "        with multiprocessing.get_context(method).Pool(2) as pool:\n"
                   "            assert pool.map(square, range(20)) == [x * x for x in range(20)]\n")
    clean([PYTHON, script])


def test_python_asyncio_echo():
    clean([PYTHON, "-c", "import asyncio\n"
           "async def handle(r, w):\n    w.write(await r.read(100)); await w.drain(); w.close(); await w.wait_closed()\n"
           "async def main():\n    server = await asyncio.start_server(handle, '127.0.0.1', 0)\n"
           "    port = server.sockets[0].getsockname()[1]\n    for _ in range(5):\n"
           "        r, w = await asyncio.open_connection('127.0.0.1', port)\n        w.write(b'hi'); w.write_eof()\n"
           "        assert await r.read() == b'hi'\n        w.close(); await w.wait_closed()\n"
           "    server.close(); await server.wait_closed()\nasyncio.run(main())\n"])


def test_python_http_server_and_urllib():
    clean([PYTHON, "-c", "import http.server, threading, urllib.request\n"
           "server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n"
           "thread = threading.Thread(target=server.serve_forever); thread.start()\n"
           "for _ in range(3):\n"
           "    with urllib.request.urlopen('http://127.0.0.1:%d/' % server.server_port, timeout=30) as r:\n"
           "        r.read()\nserver.shutdown(); server.server_close(); thread.join()\n"])


def test_python_http_server_module_with_curl():
    # A test script the way people write them: start `python3 -m http.server`,
    # wait for its port, fetch three pages with curl, stop it.
    write("www/index.html", "hello\n")
    script_on_loopback("%s -m http.server --bind 127.0.0.1 --directory www 8000 >/dev/null 2>&1 &\nserver=$!\n"
                       "./wait-for-port 8000\nfor page in / /index.html /; do curl -sf http://127.0.0.1:8000$page "
                       ">/dev/null; done\nkill $server; wait $server || true\n" % PYTHON)


# --- real-world: servers and clients ------------------------------------------

NGINX_CONF = """daemon off;
master_process on;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {dir}/access.log;
  client_body_temp_path {dir}/tmp;
  proxy_temp_path {dir}/tmp;
  fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp;
  scgi_temp_path {dir}/tmp;
  server {{
    listen 127.0.0.1:8080;
    root {dir}/html;
  }}
}}
"""


def nginx(clients):
    """nginx (a master and two workers) serving three pages to clients, then
    told to quit (SIGQUIT: finish the requests, close, exit)."""
    for page in ("index", "a", "b"):
        write("nginx/html/%s.html" % page, page + "\n")
    os.makedirs(os.path.join(work, "nginx/tmp"), exist_ok=True)
    conf = write("nginx/nginx.conf", NGINX_CONF.format(dir=os.path.join(work, "nginx")))
    script_on_loopback("/usr/sbin/nginx -c %s -e %s/nginx/error.log &\nnginx=$!\n./wait-for-port 8080\n%s\n"
                       "kill -QUIT $nginx\nwait $nginx\n" % (conf, work, clients))


def test_nginx_three_pages_and_quit():
    nginx("for page in / /a.html /b.html; do curl -sf http://127.0.0.1:8080$page >/dev/null; done")


def test_nginx_keepalive_with_curl_and_wget():
    nginx("curl -sf http://127.0.0.1:8080/ http://127.0.0.1:8080/a.html http://127.0.0.1:8080/b.html >/dev/null\n"
          "wget -q -O /dev/null http://127.0.0.1:8080/a.html")


def test_socat_one_shot_relay():
    script_on_loopback("socat -u TCP-LISTEN:7000,bind=127.0.0.1,reuseaddr CREATE:received &\nserver=$!\n"
                       "./wait-for-port 7000\necho hello | socat -u - TCP:127.0.0.1:7000\nwait $server\n"
                       "grep -q hello received\n")


def test_socat_exec_half_close():
    # The client half-closes; socat relays through `tr` and answers on the
    # half-closed connection after it closed its listener (one-shot).
    script_on_loopback("socat TCP-LISTEN:7001,bind=127.0.0.1,reuseaddr EXEC:'tr a-z A-Z' &\nserver=$!\n"
                       "./wait-for-port 7001\n[ \"$(echo hello | socat - TCP:127.0.0.1:7001)\" = HELLO ]\n"
                       "wait $server\n")


def test_socat_forking_relay():
    script_on_loopback("socat TCP-LISTEN:7002,bind=127.0.0.1,reuseaddr,fork EXEC:cat &\nbackend=$!\n"
                       "socat TCP-LISTEN:7003,bind=127.0.0.1,reuseaddr,fork TCP:127.0.0.1:7002 &\nrelay=$!\n"
                       "./wait-for-port 7002\n./wait-for-port 7003\n"
                       "for i in 1 2 3; do [ \"$(echo ping$i | socat - TCP:127.0.0.1:7003)\" = ping$i ]; done\n"
                       "kill $relay $backend\nwait $relay $backend || true\n")


def openssl_s_server(options, port, clients):
    """openssl s_server -www (a self-signed certificate made here) on port."""
    key, cert = make_certificate()
    script_on_loopback("openssl s_server -quiet %s -accept 127.0.0.1:%d -cert %s -key %s -www </dev/null "
                       ">/dev/null 2>&1 &\nserver=$!\n./wait-for-port %d\n%s\n" % (options, port, cert, key, port, clients))


def test_openssl_s_server_with_curl():
    openssl_s_server("", 8443, "for i in 1 2 3; do curl -sfk https://127.0.0.1:8443/ >/dev/null; done\n"
                     "kill $server\nwait $server || true")


def test_openssl_s_client_to_s_server():
    openssl_s_server("-naccept 1", 8444, "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | openssl s_client -quiet "
                     "-connect 127.0.0.1:8444 -ign_eof 2>/dev/null | grep -q '200 ok'\nwait $server")


def test_libwebsockets_test_server_and_client():
    # libwebsockets' own test apps (Debian's libwebsockets-test-server): the
    # client connects once (--once: the dumb-increment protocol, then it closes).
    script_on_loopback("libwebsockets-test-server --port=7681 >server.log 2>&1 &\nserver=$!\n./wait-for-port 7681\n"
                       "timeout 60 libwebsockets-test-client 127.0.0.1 --port=7681 --once >client.log 2>&1\n"
                       "kill -INT $server\nwait $server || true\n")


def test_curl_many_connections_to_python_server():
    clean([PYTHON, "-c", "import http.server, subprocess, threading\n"
           "server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n"
           "thread = threading.Thread(target=server.serve_forever); thread.start()\n"
           "url = 'http://127.0.0.1:%d/' % server.server_port\n"
           "subprocess.run(['curl', '-sf', '--parallel', '-o', '/dev/null', '-o', '/dev/null', '-o', '/dev/null', url, url, url], check=True, timeout=60)\n"
           "server.shutdown(); server.server_close(); thread.join()\n"])


def test_ssh_keygen_and_openssl_tools():
    shell("ssh-keygen -q -t ed25519 -N '' -f key && openssl genpkey -algorithm ed25519 -out k.pem && "
          "openssl pkey -in k.pem -pubout | openssl dgst -sha256 >/dev/null")


# --- planted leaks: the exact finding ------------------------------------------

def program(name):
    return os.path.join(args.programs, name)


def connection(stdout, name):
    m = re.search(r"^%s fd (\d+)  (\S+) -> (\S+)$" % name, stdout, re.M)
    check(m, "the program did not print its %s connection" % name)
    return int(m.group(1)), m.group(2), m.group(3)


def the_finding(report, status, **expected):
    """Exactly one finding, with these fields (fd.* for the fd's)."""
    check(status == 1, "findings: exit status 1, got %d" % status)
    check(len(report["findings"]) == 1, "exactly one finding, got %d" % len(report["findings"]))
    (f,) = report["findings"]
    for key, value in expected.items():
        actual = f["fd"][key[3:]] if key.startswith("fd_") else f[key]
        check(actual == value, "%s: expected %r, got %r" % (key, value, actual))
    return f


def test_planted_c_client_close_wait():
    status, report, out = closecheck([program("cli_close_wait_leak")])
    fd, local, peer = connection(out, "client")
    f = the_finding(report, status, type="close-wait", when="exit", command="cli_close_wait_",
                    fd_fd=fd, fd_state="CLOSE_WAIT", fd_local=local, fd_peer=peer)
    check(f["eof_read"] and f["why"] == peer + " hung up and this process never closed its end (it read the EOF): "
          "no FIN went back until it exited",
          "why it matters: " + f["why"])


def test_planted_c_fork_child_close_wait():
    status, report, out = closecheck([program("cli_child_holder")])
    fd, local, peer = connection(out, "server")
    f = the_finding(report, status, type="close-wait", when="exit", crossed_exec=False,
                    fd_fd=fd, fd_state="CLOSE_WAIT", fd_local=local, fd_peer=peer)
    check(f["inherited_from"]["pid"] != f["pid"], "held by the forked child, inherited from the server")


def test_planted_c_connection_through_exec():
    status, report, out = closecheck([program("cli_exec_holder")])
    fd, local, peer = connection(out, "server")
    f = the_finding(report, status, type="held-after-close", when="exit", command="cat", crossed_exec=True,
                    fd_fd=fd, fd_state="ESTAB", fd_local=local, fd_peer=peer)
    check(f["inherited_from"]["command"] == "cli_exec_holder", "inherited from the server, which closed it")
    check(peer + " got no FIN until it exited" in f["why"], "why it matters: " + f["why"])


def test_planted_c_listener_through_exec():
    status, report, out = closecheck([program("cli_listener_exec")])
    m = re.search(r"^listener (\S+)$", out, re.M)
    check(m, "the program printed its listener")
    f = the_finding(report, status, type="held-after-close", command="cat", crossed_exec=True,
                    fd_state="LISTEN", fd_local=m.group(1))
    check("port %s stayed bound" % m.group(1) in f["why"], "why it matters: " + f["why"])


def test_planted_c_session_after_stop():
    status, report, out = closecheck([program("cli_session_after_stop")])
    fd, local, peer = connection(out, "server")
    f = the_finding(report, status, type="close-wait", when="listener-close", command="cli_session_aft",
                    fd_fd=fd, fd_state="CLOSE_WAIT", fd_local=local, fd_peer=peer, fate="held-at-exit")
    check(f["listener"]["side"] == "server" and f["listener"]["local"] == local and f["listener"]["pid"] == f["pid"],
          "a session of the listener that closed")


def test_planted_c_client_after_stop():
    status, report, out = closecheck([program("cli_client_after_stop")])
    fd, local, peer = connection(out, "client")
    f = the_finding(report, status, type="close-wait", when="listener-close", eof_read=True, fd_fd=fd,
                    fd_state="CLOSE_WAIT", fd_local=local, fd_peer=peer, fate="held-at-exit")
    check(f["listener"]["side"] == "client" and f["listener"]["local"] == peer, "a client of the listener that closed")
    check(f["why"].startswith("its server pid %d" % f["pid"]), "why it matters: " + f["why"])


def test_planted_c_session_outlives_settle():
    # The server keeps running 3 s with the dead session, then closes it:
    # past --settle (100 ms), a finding; its fate says it was closed later.
    status, report, out = closecheck([program("cli_session_after_stop"), "3000"], "--settle", "100")
    fd, local, peer = connection(out, "server")
    f = the_finding(report, status, type="close-wait", when="listener-close", fd_fd=fd, fd_state="CLOSE_WAIT",
                    fd_peer=peer)
    check(isinstance(f["fate"], dict) and f["fate"]["closed_after_ms"] >= 1000, "closed later: %r" % f["fate"])


def test_planted_c_session_at_listener_close_settle_zero():
    # --settle 0: a session in CLOSE_WAIT is a finding the moment its listener closes.
    status, report, out = closecheck([program("cli_session_after_stop"), "10"], "--settle", "0")
    fd, local, peer = connection(out, "server")
    f = the_finding(report, status, type="close-wait", when="listener-close", fd_fd=fd, fd_peer=peer)
    check(isinstance(f["fate"], dict), "closed by the program after the listener: %r" % f["fate"])


def test_planted_c_sessions_closed_at_stop():
    # Not a leak: stop() closes the listener, then its sessions.
    clean([program("cli_session_closed_at_stop")])


def test_planted_python_client_pool():
    # CPython closes the pooled socket at interpreter shutdown, right after the
    # listener's close: --settle 0 reports it there; by default it is settled.
    status, report, out = closecheck([PYTHON, os.path.join(HERE, "leak_socket.py")], "--settle", "0")
    fd, local, peer = connection(out, "client")
    f = the_finding(report, status, type="close-wait", when="listener-close", command="python3", eof_read=True,
                    fd_fd=fd, fd_state="CLOSE_WAIT", fd_local=local, fd_peer=peer)
    check(f["listener"]["side"] == "client" and f["listener"]["local"] == peer, "a client of that listener")
    check(f["fate"] == {"closed_after_ms": f["fate"]["closed_after_ms"]}, "CPython closed it at shutdown")
    report, _ = clean([PYTHON, os.path.join(HERE, "leak_socket.py")])
    check(report["settled"] == 1, "settled by default")


def test_planted_python_client_pool_long_lived():
    # The same pool in a program that goes on running: past --settle, a finding.
    status, report, out = closecheck([PYTHON, os.path.join(HERE, "leak_socket.py"), "3"], "--settle", "100")
    fd, local, peer = connection(out, "client")
    f = the_finding(report, status, type="close-wait", when="listener-close", command="python3",
                    fd_fd=fd, fd_state="CLOSE_WAIT", fd_peer=peer)
    check(f["listener"]["side"] == "client" and f["fate"]["closed_after_ms"] >= 1000, "closed at shutdown, 3 s on")


def test_planted_python_subprocess_holder():
    status, report, out = closecheck([PYTHON, os.path.join(HERE, "subprocess_holder.py")])
    fd, local, peer = connection(out, "server")
    the_finding(report, status, type="held-after-close", command="cat", crossed_exec=True,
                fd_state="ESTAB", fd_local=local, fd_peer=peer)


def test_planted_python_fork_worker_close_wait():
    status, report, out = closecheck([PYTHON, os.path.join(HERE, "fork_child_close_wait.py")])
    fd, local, peer = connection(out, "server")
    f = the_finding(report, status, type="close-wait", when="exit", crossed_exec=False,
                    fd_fd=fd, fd_state="CLOSE_WAIT", fd_local=local, fd_peer=peer)
    check(f["inherited_from"]["command"] == "python3" and f["inherited_from"]["pid"] != f["pid"],
          "the worker, inherited from the server")


def test_planted_bash_dev_tcp_background_job():
    # A shell script opens a connection on fd 3, starts a background job
    # (which inherits fd 3), and closes fd 3: the job keeps the connection.
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    os.mkfifo(os.path.join(work, "go"))
    script = ("exec 3<>/dev/tcp/127.0.0.1/%d\ncat go >/dev/null &\nexec 3>&-\necho done >go\nwait\n" % port)
    try:
        status, report, out = closecheck(["/bin/bash", "-c", script])
        connection_, _ = server.accept()
        peer = "%s:%d" % connection_.getpeername()
        connection_.close()
    finally:
        server.close()
    f = the_finding(report, status, type="held-after-close", command="cat", crossed_exec=True, fd_fd=3,
                    fd_state="ESTAB", fd_local=peer, fd_peer="127.0.0.1:%d" % port)
    check(f["inherited_from"]["command"] == "bash", "inherited from bash, which closed it")
    # Not a finding: the script execs a program in place and hands it fd 3 on
    # purpose (there is no other holder that closed it).
    server = socket.create_server(("127.0.0.1", 0))
    try:
        report, _ = clean(["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/%d; exec cat /dev/null"
                           % server.getsockname()[1]])
        server.accept()[0].close()
    finally:
        server.close()
    check(report["not_findings"] == 1, "fd 3, held at exit, is not a finding")


def test_planted_strict_file_at_exit():
    # Not a finding by default; --strict lists it, and that it crossed exec.
    script = "exec 7</etc/hostname; exec cat /dev/null"
    report, _ = shell(script)
    check(report["not_findings"] == 1, "counted as held at exit, not a finding")
    status, report, _ = closecheck(["/bin/sh", "-c", script], "--strict")
    the_finding(report, status, type="held-at-exit", command="cat", crossed_exec=True, fd_fd=7, fd_kind="file",
                fd_target="/etc/hostname")
    # A child whose parent still holds the fd: never a finding, even with --strict.
    status, report, _ = closecheck(["/bin/sh", "-c", "exec 7</etc/hostname; cat /dev/null; exec 7<&-"], "--strict")
    check(status == 0 and report["findings"] == [], "the parent that set it up still held it")


# --- main ----------------------------------------------------------------------

def scenarios():
    names = []
    for name in sorted(globals()):
        if name.startswith("test_planted_"):
            names.append("planted/" + name[len("test_planted_"):].replace("_", "-"))
        elif name.startswith("test_"):
            names.append("real-world/" + name[len("test_"):].replace("_", "-"))
    return names


def main():
    global args, work
    if sys.argv[1:] == ["list"]:
        print(";".join(scenarios()))
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--closecheck", required=True)
    parser.add_argument("--programs", required=True)
    parser.add_argument("scenario")
    args = parser.parse_args()
    group, _, name = args.scenario.partition("/")
    function = globals().get(("test_planted_" if group == "planted" else "test_") + name.replace("-", "_"))
    if group not in ("planted", "real-world") or not function:
        print("unknown scenario %r; `real_world.py list` lists them" % args.scenario, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="closecheck-real-world-") as work:
        os.chmod(work, 0o755)  # nginx's workers run as another user
        function()
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
