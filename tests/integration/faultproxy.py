#!/usr/bin/env python3
"""faultproxy.py LISTEN_PORT UPSTREAM_PORT - an HTTP proxy on 127.0.0.1 that
injects S3 failures in front of an S3 emulator, for the retry tests.

One request per client connection: the request is read whole (head and
Content-Length body), then either a fault is injected or it is sent to the
upstream (127.0.0.1:UPSTREAM_PORT) with "Connection: close" and the answer
is relayed.  Host and every signed header pass unchanged, so signatures
made for the proxy's address stay valid.

Faults are armed through the proxy itself:
    POST /__fault__   body "MODE COUNT [METHOD]"
                                           the next COUNT requests (with METHOD:
                                           the next COUNT of that method) get MODE
    GET  /__fault__                        "injected N" (faults so far)
MODE is one of:
    503       503 Slow Down with an S3 SlowDown error document
    err200    200 OK whose body is an S3 InternalError document
    412       412 Precondition Failed (what S3 answers to an If-Match or
              x-amz-copy-source-if-match that names another version)
    drop      close the connection without answering
    reset     close with a TCP reset (SO_LINGER 0)
    truncate  relay the answer but cut its body in half, then close
    hang      never answer (held open up to 60 s)
    norange   forward without the Range header (a server that ignores it)
    stall     relay the head and half the body, then send nothing more (the
              connection held open up to 60 s)
    shortlen  relay half the body with a Content-Length that says so (a
              well-formed answer shorter than its Content-Range)
    longlen   relay the whole body with a Content-Length 1000 bytes larger,
              then close
    etag      relay the answer with another ETag (another version of the
              object, from a store that ignores If-Match)
    none      stop injecting
Requests are counted too, for tests that assert how many GETs a read made:
    GET  /__requests__                     one line per request since the last
                                           clear: "METHOD TARGET RANGE" (RANGE
                                           the Range header's value, or "-")
    POST /__requests__                     clear that list
(at most 100,000 lines are kept; older ones are dropped first).
Every wait is bounded; the proxy stops on SIGTERM, or by itself after
LIFETIME seconds.
"""
import asyncio
import collections
import socket
import struct
import sys

state = {"mode": "none", "count": 0, "method": None, "injected": 0}

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b'<Message>Please reduce your request rate.</Message>'
            b'<RequestId>FAULTPROXY</RequestId></Error>')
PRECONDITION = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code>'
                b'<Message>At least one of the pre-conditions you specified did not hold</Message>'
                b'<Condition>x-amz-copy-source-If-Match</Condition>'
                b'<RequestId>FAULTPROXY</RequestId></Error>')
INTERNAL = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
            b'<Message>We encountered an internal error. Please try again.</Message>'
            b'<RequestId>FAULTPROXY</RequestId></Error>')
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024 * 1024
LIFETIME = 1800
requests = collections.deque(maxlen=100000)


def response(status, reason, body):
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nx-amz-request-id: FAULTPROXY\r\n"
            f"Connection: close\r\n\r\n").encode()
    return head + body


async def read_request(reader):
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    if len(head) > MAX_HEAD:
        raise ValueError("request head too long")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length < 0 or length > MAX_BODY:
        raise ValueError("bad content-length")
    body = await asyncio.wait_for(reader.readexactly(length), 60) if length else b""
    return head, body


def describe(head):
    """ "METHOD TARGET RANGE" of a request head, for /__requests__."""
    lines = head.split(b"\r\n")
    method, _, rest = lines[0].decode("latin-1").partition(" ")
    target = rest.rsplit(" ", 1)[0]
    rng = "-"
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"range":
            rng = value.strip().decode("latin-1")
    return f"{method} {target} {rng}"


def split_answer(answer):
    end = answer.find(b"\r\n\r\n") + 4
    return answer[:end], answer[end:]


def set_header(head, name, value):
    """head with header `name` (lower case bytes) given `value` (bytes)."""
    lines = head[:-4].split(b"\r\n")
    out = [l for l in lines if not l.lower().startswith(name + b":")]
    return b"\r\n".join(out + [name + b": " + value]) + b"\r\n\r\n"


def take_fault(method):
    if state["method"] and method != state["method"]:
        return None
    if state["count"] > 0 and state["mode"] != "none":
        state["count"] -= 1
        state["injected"] += 1
        return state["mode"]
    return None


async def forward(head, body, upstream_port, drop_range=False):
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", upstream_port), 10)
    dropped = (b"connection:", b"range:") if drop_range else (b"connection:",)
    lines = [l for l in head.split(b"\r\n") if l and not l.lower().startswith(dropped)]
    w.write(b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n" + body)
    await w.drain()
    chunks = []
    total = 0
    while True:
        data = await asyncio.wait_for(r.read(1 << 16), 60)
        if not data:
            break
        chunks.append(data)
        total += len(data)
        if total > MAX_BODY + MAX_HEAD:
            break
    w.close()
    return b"".join(chunks)


async def handle(reader, writer, upstream_port):
    try:
        head, body = await read_request(reader)
        request_line = head.split(b"\r\n", 1)[0]
        if b" /__fault__" in request_line:
            if request_line.startswith(b"POST"):
                words = body.decode().split()
                state["mode"], state["count"] = words[0], int(words[1])
                state["method"] = words[2] if len(words) > 2 else None
            writer.write(response(200, "OK", f"injected {state['injected']}".encode()))
            await writer.drain()
            return
        if b" /__requests__" in request_line:
            if request_line.startswith(b"POST"):
                requests.clear()
            text = "".join(line + "\n" for line in requests)
            writer.write(response(200, "OK", text.encode()))
            await writer.drain()
            return
        requests.append(describe(head))
        fault = take_fault(request_line.split(b" ", 1)[0].decode("latin-1"))
        if fault == "503":
            writer.write(response(503, "Slow Down", SLOWDOWN))
        elif fault == "err200":
            writer.write(response(200, "OK", INTERNAL))
        elif fault == "412":
            writer.write(response(412, "Precondition Failed", PRECONDITION))
        elif fault == "drop":
            pass
        elif fault == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif fault == "hang":
            await asyncio.sleep(60)
        else:
            answer = await forward(head, body, upstream_port, fault == "norange")
            ahead, abody = split_answer(answer)
            if fault == "truncate":
                answer = ahead + abody[:len(abody) // 2]
            elif fault == "stall":
                writer.write(ahead + abody[:len(abody) // 2])
                await writer.drain()
                await asyncio.sleep(60)
                answer = b""
            elif fault == "shortlen":
                half = abody[:len(abody) // 2]
                answer = set_header(ahead, b"content-length", str(len(half)).encode()) + half
            elif fault == "longlen":
                answer = set_header(ahead, b"content-length", str(len(abody) + 1000).encode()) + abody
            elif fault == "etag":
                answer = set_header(ahead, b"etag", b'"0123456789abcdef0123456789abcdef"') + abody
            writer.write(answer)
        await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    listen_port, upstream_port = int(sys.argv[1]), int(sys.argv[2])
    server = await asyncio.start_server(lambda r, w: handle(r, w, upstream_port),
                                        "127.0.0.1", listen_port)
    async with server:
        await asyncio.sleep(LIFETIME)


if __name__ == "__main__":
    asyncio.run(main())
