/* A connection that reaches an exec'd helper: the server's accepted socket
 * has no close-on-exec, so `cat` gets it too. The server closes its copy, but
 * the client gets no FIN until cat exits.
 * closecheck run: "held-after-close" in cat, ESTABLISHED, inherited from the
 * server, which closed it. */
#include "common.h"

int main(void) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  print_connection("server", server);
  fcntl(listener, F_SETFD, FD_CLOEXEC);
  fcntl(client, F_SETFD, FD_CLOEXEC);
  /* FLAW: `server` has no FD_CLOEXEC, so cat inherits the connection. */
  int input;
  pid_t cat = start_cat(&input);
  close(server);         /* the server is done with the connection: no FIN, cat holds it */
  stop_cat(cat, input);  /* cat exits, the connection's last holder */
  close(client);
  close(listener);
  return 0;
}
