# A Python client that keeps its connection in a pool after the server closed
# it: the socket sits in CLOSE_WAIT until the test stops its server.
# With an argument, the program goes on that many seconds before it ends.
# closecheck run: "held 1 socket in CLOSE_WAIT when pid P closed its listener"
# (with --settle 0, or when it goes on past --settle).
import socket
import sys
import time

server = socket.create_server(("127.0.0.1", 0))
pool = [socket.create_connection(server.getsockname())]
connection, _ = server.accept()
print("client fd %d  %s:%d -> %s:%d" % ((pool[0].fileno(),) + pool[0].getsockname() + pool[0].getpeername()))
sys.stdout.flush()
connection.close()                 # the server hangs up first
assert pool[0].recv(1) == b""     # the client sees EOF... and keeps the socket
server.close()                     # the test stops its server
if len(sys.argv) > 1:
    time.sleep(float(sys.argv[1]))  # the program's own life, not a synchronisation
