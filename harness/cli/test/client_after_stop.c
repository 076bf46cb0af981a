/* A client that reads its server's hang-up and keeps the connection while the
 * server stops, until the process exits (a pool that never checks).
 * closecheck run: "close-wait" at the listener's close, side client, still
 * held at exit. */
#include "common.h"

int main(void) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  print_connection("client", client);
  close(server);      /* the server hangs up */
  await_eof(client);  /* FLAW: the client sees EOF... and keeps the connection */
  close(listener);    /* the server stops */
  return 0;
}
