#include "support.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>

#include "closecheck/closecheck.hpp"
#include "closecheck/netns.hpp"

extern char** environ;

namespace bench {

namespace {

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

// A listener on 127.0.0.1, port chosen by the kernel.
int listen_loopback(std::uint16_t& port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail("socket");
  auto a = loopback(0);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd, 4096) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    fail("listen on 127.0.0.1");
  port = ntohs(a.sin_port);
  return fd;
}

int connect_loopback(std::uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  auto a = loopback(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

void linger_zero(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// The helper's body: hold sockets/2 connections until the parent closes the pipe.
[[noreturn]] void hold_connections(int sockets, int ready, int from_parent) {
  auto say = [&](const std::string& s) { (void)!write(ready, s.data(), s.size()); };
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  rlim_t need = static_cast<rlim_t>(sockets) + 64;
  if (limit.rlim_cur < need) {
    limit.rlim_cur = need;
    if (limit.rlim_max < need) limit.rlim_max = need;  // root may raise the hard limit
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      say("error: cannot raise RLIMIT_NOFILE to " + std::to_string(need) + "\n");
      _exit(1);
    }
  }
  std::uint16_t port = 0;
  int listener = listen_loopback(port);
  for (int i = 0; i < sockets / 2; ++i) {
    int client = connect_loopback(port);
    int server = client < 0 ? -1 : accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (server < 0) {
      say("error: connection " + std::to_string(i) + ": " + std::strerror(errno) + "\n");
      _exit(1);
    }
    // Exiting resets them (RST) instead of leaving 5,000 TIME_WAITs behind.
    linger_zero(client);
    linger_zero(server);
  }
  say("ready\n");
  char c;
  while (read(from_parent, &c, 1) > 0 || errno == EINTR) {
  }
  _exit(0);
}

std::unique_ptr<HostSockets>& current_host() {
  static std::unique_ptr<HostSockets> host;
  return host;
}

}  // namespace

std::string enter_private_netns() {
  if (const char* e = std::getenv("CLOSECHECK_BENCH_NETNS"); e && std::strcmp(e, "host") == 0)
    return "host network namespace (CLOSECHECK_BENCH_NETNS=host)";
  std::string error;
  auto how = closecheck::enter_private_network(&error);
  if (!how) return "host network namespace (" + error + ")";
  // Every run of a leaky program leaves its client ends in TIME_WAIT for 60 s,
  // which would grow /proc/net/tcp between benchmarks. Here they are dropped.
  std::ofstream("/proc/sys/net/ipv4/tcp_max_tw_buckets") << 0;
  return "private network namespace (" + *how + "), loopback only, tcp_max_tw_buckets=0";
}

HostSockets::HostSockets(int sockets) : sockets_(sockets) {
  int ready[2], to_child[2];
  if (pipe2(ready, O_CLOEXEC) != 0) fail("pipe");
  if (pipe2(to_child, O_CLOEXEC) != 0) fail("pipe");
  pid_ = fork();
  if (pid_ < 0) fail("fork");
  if (pid_ == 0) {
    close(ready[0]);
    close(to_child[1]);
    hold_connections(sockets, ready[1], to_child[0]);
  }
  close(ready[1]);
  close(to_child[0]);
  to_child_ = to_child[1];
  std::string line;
  pollfd p{ready[0], POLLIN, 0};
  char buf[256];
  while (line.find('\n') == std::string::npos && poll(&p, 1, 60'000) > 0) {
    auto n = read(ready[0], buf, sizeof buf);
    if (n <= 0) break;
    line.append(buf, static_cast<std::size_t>(n));
  }
  close(ready[0]);
  if (line != "ready\n") {
    close(to_child_);
    waitpid(pid_, nullptr, 0);
    throw std::runtime_error("host sockets helper (" + std::to_string(sockets) + " sockets): " +
                             (line.empty() ? std::string("no answer in 60 s") : line));
  }
}

HostSockets::~HostSockets() {
  close(to_child_);
  int status;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

void host_sockets(int sockets) {
  auto& host = current_host();
  if (host && host->sockets() == sockets) return;
  host.reset();
  if (sockets > 0) host = std::make_unique<HostSockets>(sockets);
}

OwnFds::OwnFds(std::size_t total) {
  for (auto now = closecheck::Snapshot::take().size(); now < total; ++now) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("open /dev/null");
    opened_.push_back(fd);
  }
}

OwnFds::~OwnFds() {
  for (int fd : opened_) close(fd);
}

LeakyServer::LeakyServer() { listener_ = listen_loopback(port_); }
LeakyServer::~LeakyServer() { close(listener_); }

int LeakyServer::leak_one() {
  int client = connect_loopback(port_);
  if (client < 0) fail("connect");
  int server = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
  if (server < 0) fail("accept");
  close(client);  // FIN: the server side goes to CLOSE_WAIT and nobody closes it
  return server;
}

void LeakyServer::reset(int fd) {
  linger_zero(fd);
  close(fd);
}

std::set<std::pair<std::string, std::string>> lsof_open_files(pid_t pid) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) fail("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  // pytest's LsofFdLeakChecker runs `lsof -Ffn0 -p PID`; -n -P -w skip name
  // lookups and warnings, which only makes lsof faster.
  auto p = std::to_string(pid);
  const char* argv[] = {"lsof", "-n", "-P", "-w", "-Ffn0", "-p", p.c_str(), nullptr};
  pid_t child;
  int rc = posix_spawnp(&child, "lsof", &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    errno = rc;
    fail("spawn lsof");
  }
  std::string text;
  char buf[65536];
  for (ssize_t n; (n = read(out[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  close(out[0]);
  int status;
  waitpid(child, &status, 0);
  // Records are NUL-terminated fields, one file per line: f<fd>\0n<name>\0
  std::set<std::pair<std::string, std::string>> files;
  std::string fd;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\0' && text[i] != '\n') continue;
    std::string_view field(text.data() + start, i - start);
    start = i + 1;
    if (field.empty()) continue;
    if (field[0] == 'f') fd = field.substr(1);
    else if (field[0] == 'n') files.emplace(fd, field.substr(1));
  }
  return files;
}

std::vector<ProcTcp> read_proc_net_tcp() {
  std::vector<ProcTcp> out;
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    FILE* f = std::fopen(path, "re");
    if (!f) continue;
    char line[512];
    bool header = true;
    while (std::fgets(line, sizeof line, f)) {
      if (header) {
        header = false;
        continue;
      }
      //  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
      ProcTcp t{};
      if (std::sscanf(line, " %*u: %*[0-9A-Fa-f]:%*x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
                      &t.state, &t.inode) == 2)
        out.push_back(t);
    }
    std::fclose(f);
  }
  return out;
}

RunResult run(const std::vector<std::string>& args, const std::string& output) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t child;
  int rc = posix_spawnp(&child, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    errno = rc;
    fail("spawn " + args[0]);
  }
  int status = 0;
  rusage usage{};
  while (wait4(child, &status, 0, &usage) < 0 && errno == EINTR) {
  }
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1,
          seconds(usage.ru_utime) + seconds(usage.ru_stime)};
}

}  // namespace bench
