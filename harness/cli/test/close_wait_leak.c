/* A client that never closes its connection after the server closed it: the
 * socket sits in CLOSE_WAIT until the process exits.
 * closecheck run: "exited holding 1 fd ... CLOSE_WAIT". */
#include "common.h"

int main(void) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  close(listener);
  print_connection("client", client);
  close(server);      /* the peer closes first */
  await_eof(client);  /* its FIN has arrived: CLOSE_WAIT */
  return 0;           /* FLAW: client is never closed */
}
