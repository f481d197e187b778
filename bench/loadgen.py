"""A closed-loop HTTP/1.1 keep-alive load generator: raw non-blocking sockets on one epoll.

It measures, for N concurrent clients that each send their next request as soon as the
previous answer is complete: requests per second, latency from the first byte sent (or the
connect, when the server closed the previous connection) to the last byte of the answer,
and the status of every answer. It also measures its own CPU time, because on this machine
it competes for the same cores as the server it loads.

Why this and not http.client, an HTTP library or asyncio: at the baseline's thousands of
requests a second, every microsecond the load generator spends per request is taken from
the server on the same two cores. http.client parses every header through the email
package; asyncio adds a future and reader registration per socket operation. Here requests
are prebuilt bytes, an answer is read for its status line, Content-Length and Connection
headers only, and one epoll serves all clients. A client keeps its connection open unless
the server says `Connection: close` (gunicorn's sync worker does after every answer); then
it reconnects, and the connect counts in the next request's latency.
"""

from __future__ import annotations

import errno
import select
import socket
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from bench.cpu import CpuMeter, CpuShare
from bench.results import BenchError

# Answers with an unexpected status kept for the error message.
_KEEP_UNEXPECTED = 5
# A hung server would otherwise hang the benchmark; gunicorn's own worker timeout is 30 s.
_DRAIN_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Request:
    data: bytes
    expect: int
    group: str = "all"


def http_request(
    method: str, path: str, port: int, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    duration_s: float
    latencies_ms: dict[str, list[float]]
    statuses: Counter[int]
    unexpected: list[str]
    exhausted_clients: int
    cpu: CpuShare

    @property
    def completed(self) -> int:
        return sum(len(values) for values in self.latencies_ms.values())

    @property
    def rps(self) -> float:
        return self.completed / self.duration_s

    def percentile_ms(self, q: float, group: str | None = None) -> float:
        if group is None:
            values = np.concatenate([np.asarray(v) for v in self.latencies_ms.values()])
        else:
            values = np.asarray(self.latencies_ms[group])
        return float(np.percentile(values, q))

    def check(self, what: str, expect: int) -> None:
        """Fail loudly unless every answer had the expected status and no client ran dry."""
        problems = []
        if set(self.statuses) != {expect}:
            problems.append(f"status codes {dict(sorted(self.statuses.items()))}")
            problems += [f"  e.g. {answer}" for answer in self.unexpected]
        if self.exhausted_clients:
            problems.append(
                f"{self.exhausted_clients} clients ran out of prepared requests before the end"
            )
        if not self.completed:
            problems.append("no request completed in the measured window")
        if problems:
            raise BenchError(
                f"{what}: expected only {expect} answers\n" + "\n".join(problems)
                + "\n(status 0 is a connection the server closed or refused)"
            )


def _parse(buffer: bytes) -> tuple[int, bool] | None:
    """(status, server closes) once `buffer` holds a whole answer, else None."""
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buffer[:head_end].lower()
    marker = head.find(b"\r\ncontent-length:")
    if marker < 0:
        raise ConnectionError(f"answer without Content-Length: {head[:200]!r}")
    value_end = head.find(b"\r\n", marker + 2)
    length = int(head[marker + 17 : value_end if value_end >= 0 else None])
    if len(buffer) - head_end - 4 < length:
        return None
    return int(head[9:12]), b"\r\nconnection: close" in head


class _Client:
    """One closed-loop client: at most one request in flight, on at most one connection."""

    __slots__ = ("buffer", "events", "pending", "request", "requests", "sock", "started")

    def __init__(self, requests: Iterator[Request]) -> None:
        self.requests = requests
        self.sock: socket.socket | None = None
        self.events = 0  # what epoll watches the socket for
        self.request: Request | None = None
        self.pending = b""  # bytes of the request not sent yet
        self.buffer = b""  # bytes of the answer received so far
        self.started = 0.0


class _Run:
    def __init__(self, port: int, clients: list[Iterator[Request]], meter: CpuMeter) -> None:
        self.address = ("127.0.0.1", port)
        self.clients = [_Client(requests) for requests in clients]
        self.meter = meter
        self.epoll = select.epoll()
        self.by_fd: dict[int, _Client] = {}
        self.latencies_ms: dict[str, list[float]] = defaultdict(list)
        self.statuses: Counter[int] = Counter()
        self.unexpected: list[str] = []
        self.exhausted_clients = 0
        self.in_flight = 0
        self.window_start = self.window_end = 0.0

    # --- one client's steps ----------------------------------------------------------

    def _begin(self, client: _Client, now: float) -> None:
        """Send the client's next request, connecting first when it has no connection."""
        if now >= self.window_end:
            return
        request = next(client.requests, None)
        if request is None:
            self.exhausted_clients += 1
            return
        client.request, client.pending, client.buffer = request, request.data, b""
        client.started = now
        self.in_flight += 1
        if client.sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            # Requests are small and sent whole; Nagle would only delay them.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.sock = sock
            self.by_fd[sock.fileno()] = client
            code = sock.connect_ex(self.address)
            if code not in (0, errno.EINPROGRESS):
                self._fail(client, f"connect: {errno.errorcode.get(code, code)}", now)
                return
            # Writable once connected; the request goes out then.
            client.events = select.EPOLLOUT
            self.epoll.register(sock.fileno(), client.events)
            return
        self._send(client, now)

    def _send(self, client: _Client, now: float) -> None:
        try:
            sent = client.sock.send(client.pending)
        except OSError as exc:
            self._fail(client, f"send: {exc}", now)
            return
        client.pending = client.pending[sent:]
        events = select.EPOLLOUT if client.pending else select.EPOLLIN
        if events != client.events:  # a kept-alive connection is left watched for reading
            client.events = events
            self.epoll.modify(client.sock.fileno(), events)

    def _receive(self, client: _Client, now: float) -> None:
        try:
            chunk = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(client, f"recv: {exc}", now)
            return
        if not chunk:
            self._fail(client, "the server closed the connection before answering", now)
            return
        client.buffer += chunk
        try:
            answer = _parse(client.buffer)
        except ConnectionError as exc:
            self._fail(client, str(exc), now)
            return
        if answer is None:
            return
        status, close = answer
        request = client.request
        self.statuses[status] += 1
        if status != request.expect and len(self.unexpected) < _KEEP_UNEXPECTED:
            self.unexpected.append(f"{status} {client.buffer[:400]!r}")
        if self.window_start <= now <= self.window_end:
            self.latencies_ms[request.group].append((now - client.started) * 1000.0)
        self.in_flight -= 1
        if close:
            self._close(client)
        self._begin(client, now)

    def _fail(self, client: _Client, reason: str, now: float) -> None:
        self.statuses[0] += 1
        if len(self.unexpected) < _KEEP_UNEXPECTED:
            self.unexpected.append(f"connection error: {reason}")
        self.in_flight -= 1
        self._close(client)
        self._begin(client, now)

    def _close(self, client: _Client) -> None:
        fd = client.sock.fileno()
        self.by_fd.pop(fd, None)
        if client.events:
            self.epoll.unregister(fd)
        client.sock.close()
        client.sock = None
        client.events = 0

    # --- the loop ----------------------------------------------------------------------

    def run(self, warmup_s: float, duration_s: float) -> None:
        now = time.monotonic()
        self.window_start = now + warmup_s
        self.window_end = self.window_start + duration_s
        metering = False
        for client in self.clients:
            self._begin(client, now)
        try:
            while self.in_flight:
                if now > self.window_end + _DRAIN_TIMEOUT_S:
                    raise BenchError(f"{self.in_flight} requests still unanswered after the end")
                if not metering and now >= self.window_start:
                    self.meter.start()
                    metering = True
                # Wake up for the window's edges even when no answer comes.
                boundary = self.window_end if metering else self.window_start
                events = self.epoll.poll(min(0.05, max(0.0, boundary - now)) or 0.05)
                now = time.monotonic()
                for fd, event in events:
                    client = self.by_fd.get(fd)
                    if client is None:
                        continue
                    if client.pending:
                        error = client.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if error:
                            self._fail(client, f"connect: {errno.errorcode.get(error)}", now)
                        else:
                            self._send(client, now)
                    elif event & (select.EPOLLIN | select.EPOLLERR | select.EPOLLHUP):
                        self._receive(client, now)
                if metering and self.meter.share is None and now >= self.window_end:
                    self.meter.stop()
        finally:
            for client in self.clients:
                if client.sock is not None:
                    self._close(client)
            self.epoll.close()
        if self.meter.share is None:
            raise BenchError(
                f"{self.exhausted_clients} clients ran out of prepared requests, "
                "and the rest stopped, before the measured window ended"
            )


def run_load(
    *, port: int, server_pid: int, clients: list[Iterator[Request]], warmup_s: float,
    duration_s: float,
) -> LoadResult:
    """Drive one request stream per client: warm up, then measure for `duration_s`."""
    meter = CpuMeter(server_pid)
    run = _Run(port, clients, meter)
    run.run(warmup_s, duration_s)
    return LoadResult(
        duration_s=duration_s,
        latencies_ms=dict(run.latencies_ms),
        statuses=run.statuses,
        unexpected=run.unexpected,
        exhausted_clients=run.exhausted_clients,
        cpu=meter.share,
    )
