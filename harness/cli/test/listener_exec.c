/* The inherited-socket bug (cases/inherited-socket): the listener has no
 * close-on-exec, so the helper the server starts inherits it. The server
 * closes its listener, but the port stays bound while the helper lives.
 * closecheck run: "held-after-close" in cat, LISTEN. */
#include <sys/wait.h>

#include "common.h"

int main(void) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  close(client);
  close(server);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(listener, (struct sockaddr*)&a, &len) != 0) die("getsockname");
  printf("listener 127.0.0.1:%u\n", ntohs(a.sin_port));
  fflush(stdout);
  int input[2];
  if (pipe(input) != 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    dup2(input[0], 0);
    close(input[0]);
    close(input[1]);
    /* FLAW: the listener has no FD_CLOEXEC, so cat inherits it. */
    execlp("cat", "cat", (char*)NULL);
    _exit(127);
  }
  close(input[0]);
  close(listener);  /* the server stops: the port stays bound, cat holds it */
  close(input[1]);
  int status;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("cat");
  return 0;
}
