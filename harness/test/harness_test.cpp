// The checker checks the checker: every kind of fd it must find, every TCP
// state it must name, and the ways a careless checker gets it wrong.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest-spi.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <utility>
#include <thread>

#include "closecheck/gtest.hpp"
#include "closecheck/netns.hpp"
#include "closecheck/sweep.hpp"

namespace cc = closecheck;
using cc::Kind;
using cc::TcpState;

namespace {

// A loopback TCP connection made by hand: listener, client, accepted.
struct Tcp {
  int listener = -1, client = -1, server = -1;
  std::string listen_addr, client_addr;

  explicit Tcp(int family = AF_INET) {
    listener = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage ss{};
    socklen_t len;
    if (family == AF_INET) {
      auto& a = reinterpret_cast<sockaddr_in&>(ss);
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      len = sizeof a;
    } else {
      auto& a = reinterpret_cast<sockaddr_in6&>(ss);
      a.sin6_family = AF_INET6;
      a.sin6_addr = in6addr_loopback;
      len = sizeof a;
    }
    EXPECT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&ss), len), 0);
    EXPECT_EQ(listen(listener, 8), 0);
    EXPECT_EQ(getsockname(listener, reinterpret_cast<sockaddr*>(&ss), &len), 0);
    client = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(connect(client, reinterpret_cast<sockaddr*>(&ss), len), 0);
    server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    listen_addr = cc::inspect(listener)->socket->local;
    client_addr = cc::inspect(client)->socket->local;
  }
  static void close_fd(int& fd) {
    if (fd >= 0) close(fd);
    fd = -1;
  }
  ~Tcp() {
    close_fd(listener);
    close_fd(client);
    close_fd(server);
  }
};

void set_linger_zero(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

}  // namespace

TEST(Snapshot, SeesANewFdAndNotAClosedOne) {
  auto before = cc::Snapshot::take();
  int fds[2];
  ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
  auto during = cc::Snapshot::take();
  EXPECT_EQ(during.size(), before.size() + 2);
  close(fds[0]);
  close(fds[1]);
  EXPECT_TRUE(cc::find_leaks(before, {.settle = std::chrono::milliseconds(0)}).empty());
}

TEST(Classify, EveryKindOfFdIsFoundAndNamed) {
  auto dir = std::filesystem::temp_directory_path() /
             ("closecheck-kinds-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto fifo = dir / "fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR2);

  EXPECT_TRUE(cc::Leaks(
      {
          {1, cc::kind(Kind::file).target(dir.string() + "/regular")},
          {1, cc::kind(Kind::directory).target(dir.string())},
          {2, cc::kind(Kind::pipe).target("pipe:\\[*\\]")},
          {1, cc::kind(Kind::fifo).target(fifo.string())},
          {1, cc::kind(Kind::char_device).target("/dev/null")},
          {1, cc::kind(Kind::eventfd)},
          {1, cc::kind(Kind::epoll)},
          {1, cc::kind(Kind::timerfd)},
          {1, cc::kind(Kind::signalfd)},
          {1, cc::kind(Kind::inotify)},
          {1, cc::kind(Kind::pidfd)},
          {2, cc::socket_protocol("unix stream")},
          {1, cc::socket_protocol("udp").local("127.0.0.1:*")},
          {1, cc::socket_protocol("netlink route")},
      },
      [&] {
        open((dir / "regular").c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int p[2];
        pipe2(p, O_CLOEXEC);
        open(fifo.c_str(), O_RDWR | O_CLOEXEC);
        open("/dev/null", O_RDONLY | O_CLOEXEC);
        eventfd(0, EFD_CLOEXEC);
        epoll_create1(EPOLL_CLOEXEC);
        timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        signalfd(-1, &mask, SFD_CLOEXEC);
        inotify_init1(IN_CLOEXEC);
        syscall(SYS_pidfd_open, getpid(), 0);
        int sv[2];
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
        int udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(udp, reinterpret_cast<sockaddr*>(&a), sizeof a);
        socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
      },
      cc::Reclaim::close));
  std::filesystem::remove_all(dir);
}

TEST(Classify, UnixSocketAddressesAsSsShowsThem) {
  auto path = std::filesystem::temp_directory_path() / ("closecheck-" + std::to_string(getpid()));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(cc::describe(*cc::inspect(fd)),
            "fd " + std::to_string(fd) + "  socket unix stream  " + path.string());
  int abstract = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un b{};
  b.sun_family = AF_UNIX;
  std::memcpy(b.sun_path, "\0closecheck", 11);
  ASSERT_EQ(bind(abstract, reinterpret_cast<sockaddr*>(&b), offsetof(sockaddr_un, sun_path) + 11), 0);
  EXPECT_EQ(cc::inspect(abstract)->socket->local, "@closecheck");
  close(fd);
  close(abstract);
  unlink(path.c_str());
}

TEST(TcpStates, ListenAndEstablishedWithAddresses) {
  std::unique_ptr<Tcp> tcp;
  EXPECT_TRUE(cc::Leaks({{1, cc::tcp(TcpState::listen).local("127.0.0.1:*")},
                         {2, cc::tcp(TcpState::established).peer("127.0.0.1:*")}},
                        [&] { tcp = std::make_unique<Tcp>(); }, cc::Reclaim::keep));
  auto server = cc::inspect(tcp->server)->socket;
  EXPECT_EQ(server->local, tcp->listen_addr);
  EXPECT_EQ(server->peer, tcp->client_addr);
  EXPECT_EQ(cc::describe(*cc::inspect(tcp->server)),
            "fd " + std::to_string(tcp->server) + "  socket tcp  " + tcp->listen_addr + " -> " +
                tcp->client_addr + "  ESTAB");
}

// Each block makes a connection, leaves it in one state, and drops the fds it
// means to leak; the listener and whatever the peer closes are not leaks.
std::unique_ptr<Tcp> leave_connection(int family = AF_INET) {
  auto tcp = std::make_unique<Tcp>(family);
  Tcp::close_fd(tcp->listener);
  return tcp;
}

TEST(TcpStates, CloseWaitWhenThePeerClosedFirst) {
  std::unique_ptr<Tcp> tcp;
  int server = -1;
  auto verdict = cc::expect_leaks({{1, cc::tcp(TcpState::close_wait).peer("127.0.0.1:*")}}, [&] {
    tcp = leave_connection();
    server = std::exchange(tcp->server, -1);  // the leak: nobody closes it
    Tcp::close_fd(tcp->client);               // the peer closes first
  }, cc::Reclaim::close);
  EXPECT_TRUE(verdict.ok) << verdict.message;
  ASSERT_EQ(verdict.leaked.size(), 1u);
  EXPECT_EQ(cc::describe(verdict.leaked[0]),
            "fd " + std::to_string(server) + "  socket tcp  " + tcp->listen_addr + " -> " +
                tcp->client_addr + "  CLOSE_WAIT");
}

TEST(TcpStates, FinWait2OnOneSideCloseWaitOnTheOther) {
  std::unique_ptr<Tcp> tcp;
  auto verdict = cc::expect_leaks({{1, cc::tcp(TcpState::fin_wait2)},
                                   {1, cc::tcp(TcpState::close_wait)}},
                                  [&] {
                                    tcp = leave_connection();
                                    shutdown(tcp->server, SHUT_WR);  // our FIN, acked by the peer
                                    tcp->server = tcp->client = -1;
                                  },
                                  cc::Reclaim::close);
  EXPECT_TRUE(verdict.ok) << verdict.message;
  ASSERT_EQ(verdict.leaked.size(), 2u);
  for (const auto& fd : verdict.leaked)
    if (fd.socket->state == TcpState::fin_wait2)
      EXPECT_EQ(fd.socket->peer, tcp->client_addr);
}

TEST(TcpStates, CloseAfterThePeerReset) {
  std::unique_ptr<Tcp> tcp;
  auto verdict = cc::expect_leaks({{1, cc::tcp(TcpState::close)}}, [&] {
    tcp = leave_connection();
    set_linger_zero(tcp->client);  // close(2) now sends RST instead of FIN
    Tcp::close_fd(tcp->client);
    tcp->server = -1;
  }, cc::Reclaim::close);
  EXPECT_TRUE(verdict.ok) << verdict.message;
  ASSERT_EQ(verdict.leaked.size(), 1u);
  // The kernel forgets the peer of a reset socket; the local address stays.
  EXPECT_EQ(verdict.leaked[0].socket->local, tcp->listen_addr);
  EXPECT_EQ(verdict.leaked[0].socket->peer, "");
}

TEST(TcpStates, Ipv6AddressesInBrackets) {
  std::unique_ptr<Tcp> tcp;
  EXPECT_TRUE(cc::Leaks({{1, cc::tcp(TcpState::close_wait).local("[[]::1]:*").peer("[[]::1]:*")}},
                        [&] {
                          tcp = leave_connection(AF_INET6);
                          Tcp::close_fd(tcp->client);
                          tcp->server = -1;
                        }, cc::Reclaim::close));
  EXPECT_EQ(tcp->listen_addr.rfind("[::1]:", 0), 0u) << tcp->listen_addr;
}

TEST(Identity, AReusedFdNumberIsANewFd) {
  int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto before = cc::Snapshot::take();
  close(fd);
  int reused = open("/dev/zero", O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(reused, fd);  // the lowest free number comes back
  auto leaks = cc::find_leaks(before, {.settle = std::chrono::milliseconds(0)});
  ASSERT_EQ(leaks.size(), 1u);
  EXPECT_EQ(leaks[0].number, fd);
  EXPECT_EQ(leaks[0].target, "/dev/zero");
  close(reused);
}

TEST(Settle, AnFdClosedLaterByAnotherThreadIsNotALeak) {
  auto before = cc::Snapshot::take();
  int fd = eventfd(0, EFD_CLOEXEC);
  std::thread closer([fd] {
    // The behaviour under test: the other thread closes a while after the test ends.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    close(fd);
  });
  EXPECT_TRUE(cc::find_leaks(before).empty());
  closer.join();
}

TEST(Settle, ARealLeakIsStillFoundAfterBackoff) {
  auto before = cc::Snapshot::take();
  int fd = eventfd(0, EFD_CLOEXEC);
  auto leaks = cc::find_leaks(before, {.settle = std::chrono::milliseconds(20)});
  ASSERT_EQ(leaks.size(), 1u);
  EXPECT_EQ(cc::describe(leaks[0]), "fd " + std::to_string(fd) + "  eventfd");
  close(fd);
}

TEST(Ignore, ByKindTargetAndBaseline) {
  auto before = cc::Snapshot::take();
  int e = eventfd(0, EFD_CLOEXEC);
  int n = open("/dev/null", O_RDONLY | O_CLOEXEC);
  cc::Options options{.settle = std::chrono::milliseconds(0)};
  options.ignore = {cc::ignore_kind(Kind::eventfd)};
  EXPECT_EQ(cc::find_leaks(before, options).size(), 1u);
  options.ignore.push_back(cc::ignore_target("/dev/*"));
  EXPECT_TRUE(cc::find_leaks(before, options).empty());
  options.ignore = {cc::ignore_snapshot(cc::Snapshot::take())};
  EXPECT_TRUE(cc::find_leaks(before, options).empty());
  options.ignore = {cc::ignore_fd(e)};
  EXPECT_EQ(cc::find_leaks(before, options).size(), 1u);
  close(e);
  close(n);
}

// ignore_always lasts for the rest of the process: every later find_leaks,
// Leaks and per-test check. The predicate names a file no other test opens.
TEST(Ignore, AlwaysAppliesToEveryLaterCheck) {
  char path[] = "/tmp/closecheck-ignore-always-XXXXXX";
  int made = mkstemp(path);
  ASSERT_GE(made, 0);
  close(made);
  cc::ignore_always(cc::ignore_target(path));
  auto before = cc::Snapshot::take();
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  int e = eventfd(0, EFD_CLOEXEC);
  auto leaks = cc::find_leaks(before, {.settle = std::chrono::milliseconds(0)});
  ASSERT_EQ(leaks.size(), 1u);  // the eventfd only
  EXPECT_EQ(leaks[0].kind, Kind::eventfd);
  close(e);
  int again = -1;
  EXPECT_TRUE(cc::NoLeaks([&] { again = open(path, O_RDONLY | O_CLOEXEC); }));
  EXPECT_GE(again, 0);
  close(again);
  close(fd);
  unlink(path);
}

// The default is Reclaim::keep: what leaked stays open for its owner.
TEST(Expect, KeepLeavesTheFdsToTheirOwner) {
  int fd = -1;
  auto leaks = cc::Leaks({{1, cc::kind(Kind::eventfd)}}, [&] { fd = eventfd(0, EFD_CLOEXEC); });
  EXPECT_TRUE(leaks);
  ASSERT_EQ(leaks.leaked.size(), 1u);
  EXPECT_EQ(leaks.leaked[0].number, fd);
  EXPECT_NE(fcntl(fd, F_GETFD), -1) << "still open";
  close(fd);
}

TEST(Expect, FailsWhenTheBlockLeaksNothingOrSomethingElse) {
  cc::Options quick{.settle = std::chrono::milliseconds(5)};
  auto nothing = cc::expect_leaks({{1, cc::kind(Kind::eventfd)}}, [] {}, cc::Reclaim::close, quick);
  EXPECT_FALSE(nothing.ok);
  EXPECT_NE(nothing.message.find("1 x eventfd"), std::string::npos) << nothing.message;
  EXPECT_NE(nothing.message.find("but it leaked:\n  nothing"), std::string::npos) << nothing.message;

  int fd = -1;
  auto other = cc::expect_leaks({{1, cc::kind(Kind::eventfd)}},
                                [&] { fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC); },
                                cc::Reclaim::close, quick);
  EXPECT_FALSE(other.ok);
  EXPECT_NE(other.message.find("fd " + std::to_string(fd) + "  timerfd"), std::string::npos)
      << other.message;
  close(fd);  // unmatched, so not reclaimed

  auto too_many = cc::expect_leaks({{1, cc::kind(Kind::eventfd)}},
                                   [] { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC); },
                                   cc::Reclaim::close, quick);
  EXPECT_FALSE(too_many.ok);
  for (const auto& leak : too_many.leaked)
    if (fcntl(leak.number, F_GETFD) != -1) close(leak.number);
}

TEST(Expect, ReclaimLeavesNothing) {
  auto before = cc::Snapshot::take();
  EXPECT_TRUE(cc::Leaks({{3, cc::kind(Kind::eventfd)}}, [] {
    for (int i = 0; i < 3; ++i) eventfd(0, EFD_CLOEXEC);
  }, cc::Reclaim::close));
  EXPECT_TRUE(cc::find_leaks(before, {.settle = std::chrono::milliseconds(0)}).empty());
}

TEST(Report, JsonNamesKindStateAndAddresses) {
  Tcp tcp;
  auto json = cc::to_json(std::vector<cc::Fd>{*cc::inspect(tcp.server)});
  EXPECT_NE(json.find("\"kind\":\"socket\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"protocol\":\"tcp\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"state\":\"ESTAB\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"peer\":\"" + tcp.client_addr + "\""), std::string::npos) << json;
  EXPECT_EQ(json.front(), '[');
  EXPECT_EQ(json.back(), ']');
}

TEST(Listener, FailsTheTestThatLeakedWithTheReport) {
  cc::LeakCheckListener listener({.settle = std::chrono::milliseconds(5)});
  const auto& info = *::testing::UnitTest::GetInstance()->current_test_info();
  ::testing::TestPartResultArray failures;
  int fd = -1;
  {
    ::testing::ScopedFakeTestPartResultReporter intercept(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &failures);
    listener.OnTestStart(info);
    fd = eventfd(0, EFD_CLOEXEC);
    listener.OnTestEnd(info);
  }
  close(fd);
  ASSERT_EQ(failures.size(), 1);
  EXPECT_TRUE(failures.GetTestPartResult(0).nonfatally_failed());
  // The report line, then where it was opened (the line of the eventfd call
  // above), where this build records open sites (not under ThreadSanitizer).
  std::string message = failures.GetTestPartResult(0).message();
  std::string line = "closecheck: 1 fd leaked by this test:\nfd " + std::to_string(fd) + "  eventfd\n";
  if (cc::recording_open_sites())
    EXPECT_TRUE(message.starts_with(line + "    opened at " + __FILE__ + ":")) << message;
  else
    EXPECT_EQ(message, line);
}

TEST(Listener, GtestMainChecksEveryTestWithNoCodeChange) {
  // listener_demo is linked with closecheck::gtest_main and has one clean and one leaky test.
  std::string command = std::string(LISTENER_DEMO) + " --closecheck_settle_ms=50 2>&1";
  FILE* out = popen(command.c_str(), "r");
  ASSERT_NE(out, nullptr);
  std::string text;
  char buf[4096];
  while (auto n = fread(buf, 1, sizeof buf, out)) text.append(buf, n);
  int status = pclose(out);
  EXPECT_EQ(WEXITSTATUS(status), 1) << text;
  EXPECT_NE(text.find("[       OK ] Demo.Clean"), std::string::npos) << text;
  EXPECT_NE(text.find("closecheck: 1 fd leaked by this test:\nfd "), std::string::npos) << text;
  EXPECT_NE(text.find("  pipe  pipe:["), std::string::npos) << text;
  EXPECT_NE(text.find("[  FAILED  ] Demo.LeaksAPipeEnd"), std::string::npos) << text;
}

TEST(Sweep, FindsAChildsCloseWaitSocket) {
  Tcp tcp;
  int go[2];
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {  // holds the inherited server socket until the parent says go
    char c;
    close(go[1]);
    close(tcp.client);
    close(tcp.listener);
    while (read(go[0], &c, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  close(go[0]);
  Tcp::close_fd(tcp.server);  // the parent lets go; the child still holds it
  Tcp::close_fd(tcp.client);  // the peer closes first: CLOSE_WAIT, in the child
  std::vector<cc::HeldElsewhere> found;
  cc::eventually([&] {
    for (auto& h : cc::held_elsewhere(cc::state_bit(TcpState::close_wait)))
      if (h.pid == child) found.push_back(h);
    return !found.empty();
  });
  close(go[1]);
  waitpid(child, nullptr, 0);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].socket.local, tcp.listen_addr);
  EXPECT_EQ(found[0].socket.peer, tcp.client_addr);
  EXPECT_EQ(found[0].socket.state, TcpState::close_wait);
  EXPECT_NE(cc::describe(found[0]).find("CLOSE_WAIT"), std::string::npos);
}

// In a private network namespace, a port held outside is free: a connect to
// it is refused and it can be bound; and loopback works there.
TEST(PrivateNetwork, IsolatesPortsAndHasLoopback) {
  Tcp tcp;
  sockaddr_in held{};
  socklen_t len = sizeof held;
  ASSERT_EQ(getsockname(tcp.listener, reinterpret_cast<sockaddr*>(&held), &len), 0);
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string why;
    if (!cc::enter_private_network(&why)) _exit(2);
    auto* a = reinterpret_cast<sockaddr*>(&held);
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(probe, a, len) == 0 || errno != ECONNREFUSED) _exit(3);
    int again = socket(AF_INET, SOCK_STREAM, 0);
    if (bind(again, a, len) != 0 || listen(again, 1) != 0) _exit(4);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    _exit(connect(client, a, len) == 0 ? 0 : 5);
  }
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  ASSERT_GE(pidfd, 0);
  pollfd p{pidfd, POLLIN, 0};
  bool exited = poll(&p, 1, 10'000) == 1;
  if (!exited) kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  close(pidfd);
  ASSERT_TRUE(exited) << "the child did not finish in 10 s";
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "no private network namespace here";
  EXPECT_NE(WEXITSTATUS(status), 3) << "the port held outside was reachable";
  EXPECT_NE(WEXITSTATUS(status), 4) << "the port held outside could not be bound";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "loopback does not work in the namespace";
}

// Recv-Q as ss prints it: bytes that arrived and nobody has read.
TEST(Sweep, ReportsTheReceiveQueue) {
  Tcp tcp;
  ASSERT_EQ(write(tcp.client, "12345", 5), 5);
  auto server_addr = cc::inspect(tcp.server)->socket->local;
  auto client_addr = cc::inspect(tcp.client)->socket->local;
  std::uint32_t queued = 0;
  EXPECT_TRUE(cc::eventually([&] {
    for (const auto& s : cc::sweep(cc::state_bit(TcpState::established)))
      if (s.local == server_addr && s.peer == client_addr) queued = s.recv_q;
    return queued == 5;
  })) << "Recv-Q " << queued;
}

TEST(Sweep, TheKernelFiltersByState) {
  Tcp tcp;
  auto listening = cc::sweep(cc::state_bit(TcpState::listen));
  bool ours = false;
  for (const auto& s : listening) {
    EXPECT_EQ(s.state, TcpState::listen);
    ours = ours || s.local == tcp.listen_addr;
  }
  EXPECT_TRUE(ours);
}
