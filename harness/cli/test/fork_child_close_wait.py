# A worker forked while the server held a connection (multiprocessing's fork
# start method) keeps its copy: the server closes its own, the client hangs
# up, and the worker exits holding the connection in CLOSE_WAIT.
# closecheck run: "close-wait" in the worker, inherited from the server.
import multiprocessing
import select
import socket
import sys


def worker(ready):
    client.close()  # FLAW: the worker closes what it knows about, but not the connection
    ready.set()
    # The worker reads until the client hangs up (10 s at most)... and returns.
    if select.select([connection], [], [], 10)[0]:
        assert connection.recv(1) == b""


if __name__ == "__main__":
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    connection, _ = server.accept()
    print("server fd %d  %s:%d -> %s:%d" % ((connection.fileno(),) + connection.getsockname() + connection.getpeername()))
    sys.stdout.flush()
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=worker, args=(ready,))
    child.start()
    assert ready.wait(10)
    connection.close()  # the server is done with it...
    client.close()      # ...and the client hangs up: the worker's copy is in CLOSE_WAIT
    child.join(30)
    assert child.exitcode == 0
    server.close()
