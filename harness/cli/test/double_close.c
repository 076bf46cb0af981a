/* Closes a pipe's read end twice: the second close(2) fails with EBADF. In a
 * program with threads the number could have been reused in between, and the
 * second close would have closed someone else's fd.
 * closecheck run: "double-close: close(N) of an fd that was not open: closed twice". */
#include "common.h"

int main(void) {
  int fds[2];
  if (pipe(fds) != 0) die("pipe"); /* site: opened */
  close(fds[1]);
  close(fds[0]); /* site: first close */
  close(fds[0]); /* site: second close */ /* FLAW: already closed */
  return 0;
}
