// Open sites: every way to create an fd records the line that called it,
// from this file, from a shared library (OpenSSL) and from header-only Asio;
// a close forgets it; a double close is reported with both closes' lines.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>

#include "closecheck/gtest.hpp"
#include "closecheck/sites.hpp"

// glibc 2.36's <sys/pidfd.h> declares it without extern "C".
extern "C" int pidfd_open(pid_t, unsigned int);

namespace {

using namespace closecheck;

std::string base(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The open site of this process's fd.
OpenSite site_of(int fd) {
  auto inspected = inspect(fd);
  if (!inspected) return {};
  std::vector<Fd> v{*inspected};
  find_open_sites(v);
  return v[0].opened;
}

// Asserts that fd's open site is this file at `line`, then closes fd.
void expect_site(int fd, int line, const char* what) {
  ASSERT_GE(fd, 0) << what;
  auto site = site_of(fd);
  ASSERT_TRUE(site.known()) << what << ": " << site.unknown;
  const auto& f = site.frames[site.site];
  EXPECT_EQ(base(f.file), base(__FILE__)) << what << ": " << f.where();
  EXPECT_EQ(f.line, line) << what << ": " << f.where();
  close(fd);
}

struct Loopback {
  int listener = -1;
  sockaddr_in address{};
  Loopback() {
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof address;
    if (bind(listener, reinterpret_cast<sockaddr*>(&address), len) != 0 || listen(listener, 4) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&address), &len) != 0)
      ADD_FAILURE() << "listener";
  }
  int connect_client() const {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(c, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) ADD_FAILURE() << "connect";
    return c;
  }
  ~Loopback() { close(listener); }
};

TEST(OpenSites, ThisProcessRecords) { EXPECT_TRUE(recording_open_sites()); }

TEST(OpenSites, EveryCreatingCallNamesItsLine) {
  expect_site(socket(AF_INET, SOCK_STREAM, 0), __LINE__, "socket");
  expect_site(open("/dev/null", O_RDONLY), __LINE__, "open");
  expect_site(openat(AT_FDCWD, "/dev/null", O_RDONLY), __LINE__, "openat");
  char name[] = "/tmp/closecheck-sites-XXXXXX";
  int tmp = mkstemp(name); int tmp_line = __LINE__;
  unlink(name);
  expect_site(tmp, tmp_line, "mkstemp");
  expect_site(epoll_create1(EPOLL_CLOEXEC), __LINE__, "epoll_create1");
  expect_site(eventfd(0, EFD_CLOEXEC), __LINE__, "eventfd");
  expect_site(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC), __LINE__, "timerfd_create");
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGUSR2);
  expect_site(signalfd(-1, &mask, SFD_CLOEXEC), __LINE__, "signalfd");
  expect_site(inotify_init1(IN_CLOEXEC), __LINE__, "inotify_init1");
  expect_site(memfd_create("sites-test", MFD_CLOEXEC), __LINE__, "memfd_create");
  expect_site(static_cast<int>(pidfd_open(getpid(), 0)), __LINE__, "pidfd_open");
  int fd = open("/dev/null", O_RDONLY);
  expect_site(dup(fd), __LINE__, "dup");
  expect_site(fcntl(fd, F_DUPFD_CLOEXEC, 100), __LINE__, "fcntl F_DUPFD_CLOEXEC");
  expect_site(dup2(fd, 200), __LINE__, "dup2");
  expect_site(dup3(fd, 201, O_CLOEXEC), __LINE__, "dup3");
  close(fd);
}

TEST(OpenSites, PairsNameTheirLine) {
  int p[2];
  ASSERT_EQ(pipe(p), 0); int line = __LINE__;
  expect_site(p[0], line, "pipe read end");
  expect_site(p[1], line, "pipe write end");
  ASSERT_EQ(pipe2(p, O_CLOEXEC), 0); line = __LINE__;
  expect_site(p[0], line, "pipe2");
  close(p[1]);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0); line = __LINE__;
  expect_site(p[1], line, "socketpair");
  close(p[0]);
}

TEST(OpenSites, AcceptedAndReceivedFdsNameTheirLine) {
  Loopback net;
  int client = net.connect_client();
  expect_site(accept(net.listener, nullptr, nullptr), __LINE__, "accept");
  close(client);
  client = net.connect_client();
  expect_site(accept4(net.listener, nullptr, nullptr, SOCK_CLOEXEC), __LINE__, "accept4");
  close(client);

  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  int passed = open("/dev/null", O_RDONLY);
  char byte = 'x';
  iovec io{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr m{};
  m.msg_iov = &io;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof control;
  auto* c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &passed, sizeof passed);
  ASSERT_EQ(sendmsg(pair[0], &m, 0), 1);
  close(passed);
  ASSERT_EQ(recvmsg(pair[1], &m, MSG_CMSG_CLOEXEC), 1); int line = __LINE__;
  int received = -1;
  std::memcpy(&received, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof received);
  expect_site(received, line, "recvmsg SCM_RIGHTS");
  close(pair[0]);
  close(pair[1]);
}

TEST(OpenSites, StdioAndDirectoryCallsNameTheirLine) {
  FILE* f = fopen("/dev/null", "r"); int line = __LINE__;
  ASSERT_NE(f, nullptr);
  auto site = site_of(fileno(f));
  ASSERT_TRUE(site.known()) << site.unknown;
  EXPECT_EQ(site.frames[site.site].line, line);
  fclose(f);
  DIR* d = opendir("/"); line = __LINE__;
  ASSERT_NE(d, nullptr);
  site = site_of(dirfd(d));
  ASSERT_TRUE(site.known()) << site.unknown;
  EXPECT_EQ(site.frames[site.site].line, line);
  closedir(d);
}

// OpenSSL's BIO_socket calls socket() from inside libcrypto.so: the stack
// goes through the library, and the site is still this file's line.
TEST(OpenSites, ACallFromASharedLibraryNamesTheLineThatCalledTheLibrary) {
  int fd = BIO_socket(AF_INET, SOCK_STREAM, 0, 0); int line = __LINE__;
  ASSERT_GE(fd, 0);
  auto site = site_of(fd);
  ASSERT_TRUE(site.known()) << site.unknown;
  EXPECT_EQ(site.frames[site.site].line, line) << site.frames[site.site].where();
  bool through_libcrypto = false;
  for (std::size_t i = 0; i < site.site; ++i)
    through_libcrypto |= site.frames[i].module.find("libcrypto") != std::string::npos;
  EXPECT_TRUE(through_libcrypto) << "frames before the site: " << site.site;
  close(fd);
}

// Asio is header-only: its socket() call is inlined into this file's code,
// under /usr/include. The site is the line that made the acceptor.
TEST(OpenSites, HeaderOnlyAsioNamesTheLineThatMadeTheAcceptor) {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor(io, {boost::asio::ip::address_v4::loopback(), 0}); int line = __LINE__;
  auto site = site_of(acceptor.native_handle());
  ASSERT_TRUE(site.known()) << site.unknown;
  EXPECT_EQ(base(site.frames[site.site].file), base(__FILE__)) << site.frames[site.site].where();
  EXPECT_EQ(site.frames[site.site].line, line) << site.frames[site.site].where();
}

// A number that is closed and reused by a call closecheck cannot see (a raw
// system call) has no site: the old one is not lent to it.
TEST(OpenSites, ACloseForgetsTheSite) {
  int fd = open("/dev/null", O_RDONLY);
  close(fd);
  int raw = static_cast<int>(syscall(SYS_socket, AF_INET, SOCK_STREAM, 0));
  ASSERT_EQ(raw, fd);
  auto site = site_of(raw);
  EXPECT_FALSE(site.known());
  EXPECT_NE(site.unknown.find("not opened through a call closecheck records"), std::string::npos)
      << site.unknown;
  close(raw);
}

TEST(OpenSites, AReportNamesTheSiteAndItsCallers) {
  int p[2];
  Verdict v = expect_leaks({{1, kind(Kind::pipe).opened_in("*/sites_test.cpp")}}, [&] {
    ASSERT_EQ(pipe(p), 0);
    close(p[1]);
  }, Reclaim::close);
  EXPECT_TRUE(v) << v.message;
  ASSERT_EQ(v.leaked.size(), 1u);
  auto text = report(v.leaked);
  EXPECT_NE(text.find("    opened at " + std::string(__FILE__) + ":"), std::string::npos) << text;
  auto json = to_json(v.leaked[0]);
  EXPECT_NE(json.find("\"opened\":{\"site\":\"" + std::string(__FILE__) + ":"), std::string::npos) << json;
  EXPECT_NE(json.find("\"frames\":[{\"pc\":\"0x"), std::string::npos) << json;
}

TEST(OpenSites, OpenedInFailsForAnotherFile) {
  int p[2];
  Verdict v = expect_leaks({{2, kind(Kind::pipe).opened_in("*/some_other_file.cpp")}},
                           [&] { ASSERT_EQ(pipe(p), 0); });
  EXPECT_FALSE(v);
  EXPECT_NE(v.message.find("opened in */some_other_file.cpp"), std::string::npos) << v.message;
  close(p[0]);
  close(p[1]);
}

// Not a tail call: a function that ends in `return open(...)` leaves no frame.
int lifetime_log = -1;
__attribute__((noinline)) void open_lifetime_log() {
  lifetime_log = open("/dev/null", O_WRONLY | O_CLOEXEC);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

TEST(OpenSites, AnFdCanBeIgnoredByWhereItWasOpened) {
  auto baseline = Snapshot::take();
  open_lifetime_log();
  Options o;
  o.settle = std::chrono::milliseconds(0);
  EXPECT_EQ(find_leaks(baseline, o).size(), 1u);
  o.ignore.push_back(ignore_opened_in("*::open_lifetime_log()"));
  auto left = find_leaks(baseline, o);
  EXPECT_TRUE(left.empty()) << report(left, 10);
  o.ignore = {ignore_opened_in("*/sites_test.cpp:*")};
  left = find_leaks(baseline, o);
  EXPECT_TRUE(left.empty()) << report(left);
  close(lifetime_log);
}

TEST(DoubleClose, IsReportedWithBothCloses) {
  take_bad_closes();
  int fd = open("/dev/null", O_RDONLY); int opened = __LINE__;
  close(fd); int first = __LINE__;
  EXPECT_EQ(close(fd), -1); int second = __LINE__;
  auto closes = take_bad_closes();
  ASSERT_EQ(closes.size(), 1u);
  const auto& b = closes[0];
  EXPECT_EQ(b.fd, fd);
  ASSERT_TRUE(b.closed_now.known() && b.closed_before.known() && b.opened.known());
  EXPECT_EQ(b.closed_now.frames[b.closed_now.site].line, second);
  EXPECT_EQ(b.closed_before.frames[b.closed_before.site].line, first);
  EXPECT_EQ(b.opened.frames[b.opened.site].line, opened);
  auto text = describe(b);
  EXPECT_NE(text.find(": closed twice\n    closed again at "), std::string::npos) << text;
}

// fdsan's case: A closes its fd, B's open gets the number, A closes "its" fd
// again and so closes B's; B's own close then fails. The report names A's
// stray close as the one before.
TEST(DoubleClose, AStrayCloseOfAReusedNumberIsNamed) {
  take_bad_closes();
  int a = open("/dev/null", O_RDONLY);
  close(a);
  int b = open("/dev/zero", O_RDONLY); int b_opened = __LINE__;
  ASSERT_EQ(b, a);
  close(a); int stray = __LINE__;
  EXPECT_EQ(close(b), -1); int b_close = __LINE__;
  auto closes = take_bad_closes();
  ASSERT_EQ(closes.size(), 1u);
  EXPECT_EQ(closes[0].closed_now.frames[closes[0].closed_now.site].line, b_close);
  EXPECT_EQ(closes[0].closed_before.frames[closes[0].closed_before.site].line, stray);
  EXPECT_EQ(closes[0].opened.frames[closes[0].opened.site].line, b_opened);
}

TEST(DoubleClose, ANumberNeverUsedHereIsNotOne) {
  take_bad_closes();
  EXPECT_EQ(close(4000), -1);  // e.g. a sweep closing every number up to a limit
  EXPECT_EQ(close(-1), -1);
  EXPECT_TRUE(take_bad_closes().empty());
}

// What a project linking closecheck::gtest_main gets: the listener's report
// names the demo's own lines, found from its source's "demo:" comments.
int demo_line(const std::string& mark) {
  std::ifstream in(LISTENER_DEMO_SOURCE);
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (++n, line.find("// demo: " + mark) != std::string::npos) return n;
  ADD_FAILURE() << "no '// demo: " << mark << "' in " << LISTENER_DEMO_SOURCE;
  return -1;
}

std::string run_demo(const std::string& env) {
  std::string command = env + " " + LISTENER_DEMO + " --closecheck_settle_ms=50 2>&1";
  FILE* out = popen(command.c_str(), "r");
  std::string text;
  if (!out) return text;
  char buf[4096];
  while (auto n = fread(buf, 1, sizeof buf, out)) text.append(buf, n);
  pclose(out);
  return text;
}

TEST(Listener, NamesTheLeakedPipesLineAndBothClosesOfADoubleClose) {
  auto text = run_demo("");
  std::string file = LISTENER_DEMO_SOURCE;
  auto at = [&](const char* mark) { return file + ":" + std::to_string(demo_line(mark)) + " "; };
  EXPECT_NE(text.find("    opened at " + at("leaked") + "open_pipe("), std::string::npos) << text;
  EXPECT_NE(text.find("      from " + at("caller") + "Demo_LeaksAPipeEnd_Test::TestBody()"),
            std::string::npos) << text;
  EXPECT_NE(text.find("closecheck: this test closed an fd that was not open:\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    closed again at " + at("second close")), std::string::npos) << text;
  EXPECT_NE(text.find("    first closed at " + at("first close")), std::string::npos) << text;
  EXPECT_NE(text.find("    opened at " + at("opened")), std::string::npos) << text;
  EXPECT_NE(text.find("[  FAILED  ] Demo.ClosesTwice"), std::string::npos) << text;
  EXPECT_NE(text.find("[       OK ] Demo.Clean"), std::string::npos) << text;
}

TEST(Listener, RecordingCanBeTurnedOff) {
  auto text = run_demo("CLOSECHECK_SITES=off");
  EXPECT_EQ(text.find("opened at"), std::string::npos) << text;
  EXPECT_EQ(text.find("closed an fd that was not open"), std::string::npos) << text;
  EXPECT_NE(text.find("[  FAILED  ] Demo.LeaksAPipeEnd"), std::string::npos) << text;
}

// CLOSECHECK_FRAMES sets the callers in expect_leaks' message too, as in the
// listener's report: a page that shows a failing test (ci/readme) sets it.
TEST(OpenSites, VerdictMessagesShowTheFramesAskedFor) {
  std::string messages[2];
  for (const char* frames : {"0", ""}) {
    setenv("CLOSECHECK_FRAMES", frames, 1);
    int fd = -1;
    auto verdict = closecheck::expect_leaks({}, [&] {
      int fds[2];
      ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
      close(fds[1]);
      fd = fds[0];
    }, closecheck::Reclaim::keep);
    EXPECT_FALSE(verdict.ok);
    messages[*frames ? 0 : 1] = verdict.message;
    close(fd);
  }
  unsetenv("CLOSECHECK_FRAMES");
  EXPECT_NE(messages[0].find("    opened at "), std::string::npos) << messages[0];
  EXPECT_EQ(messages[0].find("      from "), std::string::npos) << messages[0];
  EXPECT_NE(messages[1].find("      from "), std::string::npos) << messages[1];  // unset: the options' 3
}

TEST(Listener, MoreFramesOnRequest) {
  auto few = run_demo("CLOSECHECK_FRAMES=0");
  auto bad = run_demo("CLOSECHECK_FRAMES=x");
  EXPECT_NE(few.find("    opened at "), std::string::npos) << few;
  EXPECT_EQ(few.find("      from "), std::string::npos) << few;  // the default shows the caller (above)
  EXPECT_NE(bad.find("closecheck: CLOSECHECK_FRAMES wants a number of frames from 0 to 64, got 'x'"),
            std::string::npos) << bad;
}

}  // namespace
