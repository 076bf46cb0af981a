/* The inherited-fd leak: a child forked while the server held a connection
 * keeps its copy. The server closes its own, the client closes, and the
 * connection stays in CLOSE_WAIT as long as the child lives.
 * closecheck run: the child "exited holding 1 fd ... CLOSE_WAIT (inherited
 * from pid P ..., which closed it)". */
#include <sys/wait.h>

#include "common.h"

int main(void) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  print_connection("server", server);
  int ready[2];
  if (pipe(ready) != 0) die("pipe");
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    /* FLAW: the helper closes what it knows about, but not the connection. */
    close(listener);
    close(client);
    close(ready[0]);
    close(ready[1]);    /* tells the parent: ready */
    await_eof(server);  /* (for the test: the peer's FIN has arrived) */
    _exit(0);
  }
  close(ready[1]);
  char byte;
  if (read(ready[0], &byte, 1) != 0) die("child not ready");
  close(ready[0]);
  close(listener);
  close(server);  /* the server is done with it... */
  close(client);  /* ...and the client hangs up: the child's copy is in CLOSE_WAIT */
  int status;
  if (waitpid(child, &status, 0) != child) die("waitpid");
  return 0;
}
