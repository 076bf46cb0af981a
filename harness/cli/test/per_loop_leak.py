# A new event loop per iteration, never closed: an epoll fd and a socket pair
# each time (the per-loop-client-leak signature). CPython closes them all
# during interpreter shutdown, before the process exits.
# closecheck watch: GROWTH (socket, epoll), then "released before exit".
import asyncio
import sys
import time

loops = []
for i in range(int(sys.argv[1]) if len(sys.argv) > 1 else 12):
    loops.append(asyncio.new_event_loop())
    time.sleep(0.1)  # the program's own pace, not a synchronisation
