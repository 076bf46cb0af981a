/* Shared by the test programs: a loopback TCP connection made in one process,
 * and bounded waits. Everything fails loudly (exit 3) rather than hang. */
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static inline void die(const char* what) {
  fprintf(stderr, "%s: %s\n", what, strerror(errno));
  exit(3);
}

/* A listener on 127.0.0.1 (port 0), a client connected to it, and the
 * accepted server side. */
static inline void tcp_connection(int* listener, int* client, int* server) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  *listener = socket(AF_INET, SOCK_STREAM, 0);
  if (*listener < 0 || bind(*listener, (struct sockaddr*)&a, sizeof a) != 0 ||
      listen(*listener, 4) != 0 || getsockname(*listener, (struct sockaddr*)&a, &len) != 0)
    die("listener");
  *client = socket(AF_INET, SOCK_STREAM, 0);
  if (*client < 0 || connect(*client, (struct sockaddr*)&a, sizeof a) != 0) die("connect");
  *server = accept(*listener, NULL, NULL);
  if (*server < 0) die("accept");
}

/* Waits (10 s at most) until the peer's FIN has arrived: read() returns 0. */
static inline void await_eof(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  char byte;
  if (poll(&p, 1, 10000) != 1) die("no EOF within 10 s");
  if (read(fd, &byte, 1) != 0) die("expected EOF");
}

/* Starts `cat` with a pipe as its stdin (*input: the write end; closing it
 * ends cat). Every fd of the caller without FD_CLOEXEC goes through the exec. */
static inline pid_t start_cat(int* input) {
  int p[2];
  if (pipe(p) != 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    dup2(p[0], 0);
    close(p[0]);
    close(p[1]);
    execlp("cat", "cat", (char*)NULL);
    _exit(127);
  }
  close(p[0]);
  *input = p[1];
  return child;
}

/* Closes cat's stdin and waits for it to exit (cleanly). */
static inline void stop_cat(pid_t child, int input) {
  close(input);
  int status;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("cat");
}

/* "127.0.0.1:41234 -> 127.0.0.1:39000", as closecheck prints it. */
static inline void print_connection(const char* name, int fd) {
  struct sockaddr_in l, p;
  socklen_t ll = sizeof l, pl = sizeof p;
  if (getsockname(fd, (struct sockaddr*)&l, &ll) != 0 || getpeername(fd, (struct sockaddr*)&p, &pl) != 0)
    die("getsockname");
  char ls[INET_ADDRSTRLEN], ps[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &l.sin_addr, ls, sizeof ls);
  inet_ntop(AF_INET, &p.sin_addr, ps, sizeof ps);
  printf("%s fd %d  %s:%u -> %s:%u\n", name, fd, ls, ntohs(l.sin_port), ps, ntohs(p.sin_port));
  fflush(stdout);
}
