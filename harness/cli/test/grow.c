/* fd growth, paced by the test: says "r" (ready) on fd argv[2], then for each
 * byte read from fd argv[1] makes a socket pair and an epoll fd (+3 fds, like
 * an event loop that is never closed) and answers with that byte. Exits at EOF. */
#include <sys/epoll.h>

#include "common.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: grow COMMAND_FD ACK_FD\n");
    return 2;
  }
  int commands = atoi(argv[1]), acks = atoi(argv[2]);
  char byte = 'r';
  if (write(acks, &byte, 1) != 1) die("ready");
  while (read(commands, &byte, 1) == 1) {
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, pair) != 0 || epoll_create1(0) < 0) die("grow");
    if (write(acks, &byte, 1) != 1) die("ack");
  }
  return 0;
}
