/* A server that stops (closes its listener) while a session whose client
 * hung up sits in CLOSE_WAIT, and never closes that session.
 *   session_after_stop          exits holding it
 *   session_after_stop MS       keeps running MS ms, then closes it (a long-lived
 *                               server: closecheck's --settle decides)
 * closecheck run: "close-wait" at the listener's close, side server. */
#include <stdlib.h>

#include "common.h"

int main(int argc, char** argv) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  print_connection("server", server);
  close(client);      /* the client hangs up */
  await_eof(server);  /* FLAW: the server sees EOF... and keeps the session */
  close(listener);    /* the server stops */
  if (argc > 1) {
    poll(NULL, 0, atoi(argv[1]));  /* the program's own life, not a synchronisation */
    close(server);
  }
  return 0;
}
