#!/usr/bin/python3
"""dropped-task's asyncio peer (Debian's python3, standard library only).

Usage: peer.py SERVER_PORT WAIT_SECONDS

Serves as the forward's target (says "hello from asyncio", then closes) and
drives the protocol as the client: PING, FORWARD to itself, half-close, then
prints every line the server sends and "EOF", or "TIMEOUT" if the server has
not closed within WAIT_SECONDS.
"""
import asyncio
import sys


async def target(reader, writer):
    writer.write(b"hello from asyncio\n")
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main(port, wait):
    server = await asyncio.start_server(target, "127.0.0.1", 0)
    target_port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"PING asyncio\nFORWARD {target_port}\n".encode())
    writer.write_eof()
    ending = "EOF"
    try:
        async with asyncio.timeout(wait):
            while line := await reader.readline():
                print(line.decode(errors="replace").rstrip("\n"))
    except TimeoutError:
        ending = "TIMEOUT"
    print(ending, flush=True)
    writer.close()
    server.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
