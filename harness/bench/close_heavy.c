// The close-heavy program of the `closecheck run` benchmark (cli_bench.py,
// docs/performance.md "closecheck run"): CONNECTIONS loopback TCP connections,
// each connected, accepted, hung up by the client and closed by the server
// after it read the EOF (its socket goes CLOSE_WAIT -> LAST_ACK), then FILES
// opens and closes of a file. Nothing is leaked: every close(2) is ordinary.
// usage: closecheck_close_heavy [CONNECTIONS [FILES]]   (default 20000 50000)
#define _GNU_SOURCE  // accept4
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

static void die(const char* what) {
  perror(what);
  exit(2);
}

int main(int argc, char** argv) {
  long connections = argc > 1 ? atol(argv[1]) : 20000;
  long files = argc > 2 ? atol(argv[2]) : 50000;

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof addr;
  if (listener < 0 || bind(listener, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(listener, 64) != 0 ||
      getsockname(listener, (struct sockaddr*)&addr, &len) != 0)
    die("listener");
  for (long i = 0; i < connections; ++i) {
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (client < 0 || connect(client, (struct sockaddr*)&addr, sizeof addr) != 0) die("connect");
    int server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (server < 0) die("accept");
    if (write(client, "x", 1) != 1) die("write");
    close(client);  // the client hangs up first
    char buf[8];
    ssize_t n;
    while ((n = read(server, buf, sizeof buf)) > 0) {
    }
    if (n < 0) die("read");
    close(server);  // after the EOF: CLOSE_WAIT -> LAST_ACK
  }
  close(listener);
  for (long i = 0; i < files; ++i) {
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open");
    close(fd);
  }
  return 0;
}
