/* The inherited-socket bug (cases/inherited-socket): the listener has no
 * close-on-exec, so the helper the server starts inherits it. The server
 * closes its listener, but the port stays bound while the helper lives.
 * closecheck run: "held-after-close" in cat, LISTEN. */
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
  /* FLAW: the listener has no FD_CLOEXEC, so cat inherits it. */
  int input;
  pid_t cat = start_cat(&input);
  close(listener);       /* the server stops: the port stays bound, cat holds it */
  stop_cat(cat, input);
  return 0;
}
