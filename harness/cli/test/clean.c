/* Closes everything it opens, in a forked child too.
 * closecheck run: "no findings (2 processes checked)". */
#include <sys/wait.h>

#include "common.h"

int main(void) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  pid_t child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(listener);
    close(client);
    close(server);
    _exit(0);
  }
  int status;
  if (waitpid(child, &status, 0) != child) die("waitpid");
  close(listener);
  if (write(client, "x", 1) != 1) die("write");
  char byte;
  if (read(server, &byte, 1) != 1) die("read");
  close(client);
  await_eof(server);
  close(server);
  return 0;
}
