/* A connection that reaches an exec'd helper: the server's accepted socket
 * has no close-on-exec, so `cat` gets it too. The server closes its copy, but
 * the client gets no FIN until cat exits.
 * closecheck run: "held-after-close" in cat, ESTABLISHED, inherited from the
 * server, which closed it. */
#include <sys/wait.h>

#include "common.h"

int main(void) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  print_connection("server", server);
  int input[2];
  if (pipe(input) != 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    dup2(input[0], 0);
    close(input[0]);
    close(input[1]);
    close(listener);
    close(client);
    /* FLAW: `server` has no FD_CLOEXEC, so cat inherits the connection. */
    execlp("cat", "cat", (char*)NULL);
    _exit(127);
  }
  close(input[0]);
  close(server);    /* the server is done with the connection: no FIN, cat holds it */
  close(input[1]);  /* cat reads EOF and exits, the connection's last holder */
  int status;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) die("cat");
  close(client);
  close(listener);
  return 0;
}
