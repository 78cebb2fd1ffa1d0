"""Server-to-server push of hidden states within one inference step (Petals-style).

Without push, every hop of a decode step is a round trip from the client. With push the
client sends a step's input to the first hop only; each hop returns its output (and signed
receipt) to the client as usual AND pushes the same tensor message to the next hop
(`InferenceRequest.push`). The next hop's request for that step, sent by the client at the
same time, carries `pushed` instead of `hidden`: it waits for the push and then runs the
step as if the client had sent that tensor, so its receipt (input-hash chain included) is
the one a relayed step would get.

Who may push: the client draws a random 32-byte token per pushed step, gives it to the
previous hop (`PushTo.token`) and announces sha256(token) to the next hop
(`PushedInput.token_hash`). A push is accepted only for a session waiting on that very step
with a matching token, and only if its tensor fits the session (dtype, shape, finite). The
client still checks the next hop's receipt against the previous hop's signed output hash.

Fallback: as soon as the client has the previous hop's output it may send its own copy
(`fallback`); whichever of push and copy comes first is used, the other is ignored. A step
that gets neither within `wait_ms` is answered with `push_error` (nothing ran) so the client
can send the input itself.

Where a server pushes: only to a Pollen block server. A client could name any host:port as the
"next hop" to turn servers into senders of hidden-state-sized traffic at a third party, so the
first push to an address asks it for `Info` (small) and pushes only if it answers as a block
server that accepts pushes; the verdict is cached (`TARGET_OK_S` when it is one, `TARGET_BAD_S`
when not), so a victim that is no Pollen server gets one Info call per address and window, and
the pushes it was named for are dropped (the client falls back to relaying).

Pieces: `StreamInbox` (one Inference stream: the client's messages, read on the handler's
thread until a step waits for a push, then by a thread; and the push for the step it waits on), `PushBoard` (session id -> inbox, for the Push rpc) and
`Pusher` (sends pushes in the background, one channel per next hop).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import grpc

from node.errors import BadRequest, NodeError
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc

log = logging.getLogger("pollen.node")

MAX_WAIT_S = 60.0  # longest a pushed step / a push may wait for the other side
TARGET_OK_S = 600.0  # how long an address that answered Info as a push-accepting server stays trusted
TARGET_BAD_S = 60.0  # how long an address that did not is refused without asking again
TOKEN_BYTES = 32


class UnknownSession(NodeError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, session_id: bytes):
        super().__init__(f"push refused: no inference session {session_id.hex()[:16]}... on this server")


class PushRefused(NodeError):
    """A push for a known session that does not fit it (wrong step, token, or too late)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, problem: str):
        super().__init__(f"push refused: {problem}")


class BadToken(PushRefused):
    code = grpc.StatusCode.PERMISSION_DENIED


def token_hash(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def wait_s(wait_ms: int) -> float:
    return min(max(wait_ms, 0) / 1e3, MAX_WAIT_S)


def check_target(target: pb.PushTo) -> None:
    """A request's `push` field, before anything runs (BadRequest names the problem)."""
    host, _, port = target.address.rpartition(":")
    if not host or not port.isdigit():
        raise BadRequest(f"push address {target.address!r} is not host:port")
    if len(target.session_id) != 32 or len(target.token) != TOKEN_BYTES:
        raise BadRequest(f"push needs a 32-byte session_id and a {TOKEN_BYTES}-byte token")


class StreamInbox:
    """Messages of one Inference stream: the client's requests (read directly by the handler's
    thread, which saves a thread wake-up per step, until the first `pushed` step starts a reader
    thread that queues them) and, while a `pushed` step waits, the push or the client's fallback
    copy for it."""

    def __init__(self, request_iterator):
        self._cond = threading.Condition()
        self._requests: deque = deque()
        self._ended = False
        self.step = 0  # the session's next step (kept current by the server)
        self.check: Callable[[pb.Tensor], None] | None = None  # a pushed tensor's checks (raises)
        self._awaiting: tuple[int, bytes] | None = None  # (step, token hash) of the waiting step
        self._input: pb.Tensor | None = None
        self._source = request_iterator  # read on the handler's thread until a reader is needed
        self._reader: threading.Thread | None = None

    def _start_reader(self) -> None:
        """From now on a thread queues the client's requests (so a waiting step sees fallbacks).
        Called on the handler's thread only, so the iterator never has two readers."""
        if self._reader is None:
            self._reader = threading.Thread(target=self._read, args=(self._source,), daemon=True, name="inbox")
            self._reader.start()

    def _read(self, request_iterator) -> None:
        try:
            for request in request_iterator:
                with self._cond:
                    self._requests.append(request)
                    self._cond.notify_all()
        except Exception:  # noqa: BLE001 - cancelled / broken stream: it simply ends
            pass
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def __iter__(self):
        return self

    def __next__(self) -> pb.InferenceRequest:
        """The next client request; fallback copies outside a wait (stale) are dropped."""
        if self._reader is None:
            return self._next_direct()
        with self._cond:
            while True:
                while not self._requests and not self._ended:
                    self._cond.wait()
                if not self._requests:
                    raise StopIteration
                request = self._requests.popleft()
                if not request.fallback:
                    return request

    def _next_direct(self) -> pb.InferenceRequest:
        """The next request read on the calling (handler) thread: no thread hand-off per step
        while the stream has had no pushed step. Ends like the reader: on end or breakage."""
        while not self._ended:
            try:
                request = next(self._source)
            except Exception:  # noqa: BLE001 - StopIteration, cancelled / broken stream: it ends
                break
            if not request.fallback:
                return request
        with self._cond:
            self._ended = True
            self._cond.notify_all()
        raise StopIteration

    def ran(self, step: int) -> None:
        with self._cond:
            self.step = step
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    # ---- the waiting step ------------------------------------------------------------------
    def await_input(self, step: int, token_h: bytes, timeout: float) -> tuple[pb.Tensor, bool] | None:
        """(input tensor message, came by push) for `step`, or None after `timeout` / stream end."""
        deadline = time.monotonic() + timeout
        self._start_reader()  # the client's fallback copy may come while this step waits
        with self._cond:
            self._awaiting, self._input = (step, token_h), None
            self._cond.notify_all()  # pushes that came before the announcement
            try:
                while True:
                    if self._input is not None:
                        return self._input, True
                    if (copy := self._take_fallback(step)) is not None:
                        return copy, False
                    left = deadline - time.monotonic()
                    if self._ended or left <= 0:
                        return None
                    self._cond.wait(left)
            finally:
                self._awaiting, self._input = None, None

    def _take_fallback(self, step: int) -> pb.Tensor | None:
        for request in self._requests:
            if request.fallback and request.step == step and request.HasField("hidden"):
                self._requests.remove(request)
                return request.hidden
        return None

    def offer(self, push: pb.PushRequest) -> None:
        """Hand a push to the waiting step, waiting up to push.wait_ms for the client's request
        announcing it; raises PushRefused / BadToken / BadRequest for this pusher only."""
        deadline = time.monotonic() + wait_s(push.wait_ms)
        with self._cond:
            self._await_announcement(push.step, deadline)
            if token_hash(push.token) != self._awaiting[1]:
                raise BadToken(f"token does not match the one announced for step {push.step}")
        if self.check is not None:
            self.check(push.hidden)  # outside the lock: it runs on the compute loop
        with self._cond:
            if self._awaiting is None or self._awaiting[0] != push.step or self._input is not None:
                raise PushRefused(f"step {push.step} already has its input (the client's copy came first)")
            self._input = push.hidden
            self._cond.notify_all()

    def _await_announcement(self, step: int, deadline: float) -> None:
        while self._awaiting is None or self._awaiting[0] != step:
            if step < self.step:
                raise PushRefused(f"step {step} already ran (session at step {self.step})")
            if step > self.step:
                raise PushRefused(f"step {step} is ahead of the session (at step {self.step})")
            left = deadline - time.monotonic()
            if self._ended or left <= 0:
                raise PushRefused(f"no request of this session waits for a push at step {step}")
            self._cond.wait(left)


class PushBoard:
    """Session id -> inbox of the stream holding it, for the Push rpc."""

    def __init__(self):
        self._cond = threading.Condition()
        self._inboxes: dict[bytes, StreamInbox] = {}

    def register(self, session_id: bytes, inbox: StreamInbox) -> bool:
        """False (not pushable) when another live stream already uses this session id."""
        with self._cond:
            if session_id in self._inboxes:
                return False
            self._inboxes[session_id] = inbox
            self._cond.notify_all()
            return True

    def unregister(self, session_id: bytes, inbox: StreamInbox) -> None:
        with self._cond:
            if self._inboxes.get(session_id) is inbox:
                del self._inboxes[session_id]

    def holds(self, session_id: bytes, inbox: StreamInbox) -> bool:
        with self._cond:
            return self._inboxes.get(session_id) is inbox

    def deliver(self, push: pb.PushRequest) -> pb.PushResponse:
        """The Push rpc: wait (up to push.wait_ms) for the session if it is not open yet (a push
        for step 0 may outrun the open), then offer the push to it."""
        if len(push.session_id) != 32:
            raise BadRequest(f"session_id must be 32 bytes, got {len(push.session_id)}")
        deadline = time.monotonic() + wait_s(push.wait_ms)
        with self._cond:
            while (inbox := self._inboxes.get(bytes(push.session_id))) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise UnknownSession(bytes(push.session_id))
                self._cond.wait(left)
        inbox.offer(push)
        return pb.PushResponse()


class Pusher:
    """Sends pushes in the background (the step's response to the client is not held up) over
    one cached channel per next-hop address; a failed push is logged, the client falls back."""

    MAX_CHANNELS = 64

    def __init__(self, max_message_bytes: int, workers: int = 8, clock: Callable[[], float] = time.monotonic):
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="push")
        self._targets: dict[str, tuple[bool, float]] = {}  # address -> (is a push-accepting server, until)
        self._probes: dict[str, threading.Lock] = {}  # address -> held while its Info probe runs
        self._clock = clock
        self._options = [("grpc.max_receive_message_length", max_message_bytes),
                         ("grpc.max_send_message_length", max_message_bytes), ("grpc.enable_retries", 0)]
        self._channels: OrderedDict[str, tuple[grpc.Channel, pb_grpc.BlockServerStub]] = OrderedDict()
        self._lock = threading.Lock()
        self.failures = 0

    def push(self, target: pb.PushTo, hidden: pb.Tensor):
        request = pb.PushRequest(session_id=target.session_id, step=target.step, hidden=hidden,
                                 token=target.token, wait_ms=target.wait_ms)
        return self._pool.submit(self._send, target.address, request)

    def _stub(self, address: str) -> pb_grpc.BlockServerStub:
        with self._lock:
            if address in self._channels:
                self._channels.move_to_end(address)
                return self._channels[address][1]
            channel = grpc.insecure_channel(address, options=self._options)
            self._channels[address] = (channel, pb_grpc.BlockServerStub(channel))
            if len(self._channels) > self.MAX_CHANNELS:
                self._channels.popitem(last=False)[1][0].close()
            return self._channels[address][1]

    def is_server(self, address: str) -> bool:
        """Whether `address` answers Info as a block server that accepts pushes (cached). Pushes to
        one address that start together share one probe: the target gets a single Info call."""
        with self._lock:
            probe = self._probes.setdefault(address, threading.Lock())
        with probe:  # a second caller waits here, then reads the first one's verdict
            known = self._known(address)
            if known is not None:
                return known
            now = self._clock()
            try:
                ok = bool(self._stub(address).Info(pb.InfoRequest(), timeout=2.0).push)
            except grpc.RpcError:
                ok = False
            if not ok:
                log.warning("not pushing to %s: it is no Pollen block server accepting pushes", address)
            with self._lock:
                if len(self._targets) > 4 * self.MAX_CHANNELS:
                    self._targets.clear()
                    self._probes = {address: probe}
                self._targets[address] = (ok, now + (TARGET_OK_S if ok else TARGET_BAD_S))
            return ok

    def _known(self, address: str) -> bool | None:
        with self._lock:
            known = self._targets.get(address)
        return known[0] if known is not None and known[1] > self._clock() else None

    def _send(self, address: str, request: pb.PushRequest) -> bool:
        if not self.is_server(address):
            self.failures += 1
            return False
        try:
            self._stub(address).Push(request, timeout=wait_s(request.wait_ms) + 10.0)
            return True
        except grpc.RpcError as err:
            self.failures += 1
            code = err.code().name if hasattr(err, "code") and err.code() else "ERROR"
            log.warning("push to %s (step %d) failed: %s: %s", address, request.step, code,
                        err.details() if hasattr(err, "details") else err)
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for channel, _ in self._channels.values():
                channel.close()
            self._channels.clear()
