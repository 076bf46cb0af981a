/* The fixed shape of session_after_stop: a session is closed when its
 * client hangs up, and stop() closes the listener and then every session,
 * one of them in CLOSE_WAIT with the client's FIN arrived but not yet read.
 * closecheck run: "no findings". */
#include "common.h"

int main(void) {
  int listener, client, server;
  tcp_connection(&listener, &client, &server);
  int client2 = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (client2 < 0 || getsockname(listener, (struct sockaddr*)&a, &len) != 0 ||
      connect(client2, (struct sockaddr*)&a, sizeof a) != 0)
    die("connect");
  int server2 = accept(listener, NULL, NULL);
  if (server2 < 0) die("accept");
  close(client);
  await_eof(server);  /* a client hangs up: its session is closed */
  close(server);
  close(client2);     /* the other client hangs up just as the server stops: */
  struct pollfd p = {server2, POLLIN, 0};
  if (poll(&p, 1, 10000) != 1) die("no FIN within 10 s");  /* (its FIN is in, unread) */
  close(listener);    /* stop(): the listener, then the sessions */
  close(server2);
  return 0;
}
