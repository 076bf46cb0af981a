/* The open-site table: where libclosecheck_sites.so records the call stack
 * of every fd a process creates, and of its last close. One per process, in
 * a private mapping of a memfd named "closecheck-sites" (so that it shows in
 * /proc/PID/maps and `closecheck run` can read it from outside with
 * process_vm_readv). A fork's child gets a copy; an exec starts a new one.
 *
 * The header, then `capacity` slots indexed by fd number. A stack is valid
 * when its seq is non-zero; an fd's open stack is current when its seq is
 * above its close stack's and the device and inode still match.
 * C layout, shared by the recorder, the harness and the CLI. */
#ifndef CLOSECHECK_SITES_TABLE_H
#define CLOSECHECK_SITES_TABLE_H

#include <stdint.h>

#define CLOSECHECK_SITES_NAME "closecheck-sites"
#define CLOSECHECK_SITES_MAGIC 0x736574697363630aULL /* "\nccsites" */
#define CLOSECHECK_SITES_VERSION 1u
#define CLOSECHECK_SITES_FRAMES 24
#define CLOSECHECK_SITES_BAD_CLOSES 32

struct closecheck_stack {
  uint64_t seq;    /* order of events in this process; 0: none */
  uint64_t device; /* of the object the fd referred to (open stacks) */
  uint64_t inode;
  int32_t tid;
  uint32_t depth;
  uint64_t pc[CLOSECHECK_SITES_FRAMES]; /* return addresses, innermost first */
};

struct closecheck_slot {
  struct closecheck_stack open;
  struct closecheck_stack close;
};

/* A close(2) that failed with EBADF, with what the table knew of that fd then. */
struct closecheck_bad_close {
  int32_t fd;
  int32_t pad;
  struct closecheck_stack now;      /* the failed close */
  struct closecheck_stack previous; /* the close that did close it, if recorded */
  struct closecheck_stack opened;   /* the open that the previous close undid */
};

struct closecheck_sites_header {
  uint64_t magic;
  uint32_t version;
  uint32_t capacity; /* slots */
  uint64_t seq;      /* last seq handed out */
  uint64_t bad_close_count;  /* every one; the first CLOSECHECK_SITES_BAD_CLOSES are kept */
  /* fds the recorder itself opened (libunwind's memory-validation pipe):
   * not the program's, so never reported */
  int32_t own_fds[4];
  uint32_t own_count;
  uint32_t pad;
  struct closecheck_bad_close bad[CLOSECHECK_SITES_BAD_CLOSES];
  /* struct closecheck_slot slots[capacity] follows, page-aligned */
};

static inline uint64_t closecheck_sites_slots_offset(void) {
  uint64_t size = sizeof(struct closecheck_sites_header);
  return (size + 4095) & ~(uint64_t)4095;
}

#endif
