# A Python server hands a helper process its connection by mistake
# (pass_fds, as close_fds=False would): it closes its own socket, but the
# client gets no FIN until the helper exits.
# closecheck run: "held-after-close" in cat, ESTABLISHED.
import socket
import subprocess
import sys

server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname())
connection, _ = server.accept()
print("server fd %d  %s:%d -> %s:%d" % ((connection.fileno(),) + connection.getsockname() + connection.getpeername()))
sys.stdout.flush()
helper = subprocess.Popen(["cat"], stdin=subprocess.PIPE, pass_fds=(connection.fileno(),))
connection.close()   # the server is done with it: no FIN, cat holds it
helper.stdin.close()  # cat exits, the connection's last holder
assert helper.wait(timeout=30) == 0
client.close()
server.close()
