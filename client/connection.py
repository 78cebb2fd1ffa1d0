"""One gRPC channel per server, and the inference stream as a blocking request/response pair."""

from __future__ import annotations

import queue
import threading

import grpc

from client.errors import RequestRejected, ServerFailure
from pollen.proto import swarm_pb2 as pb
from pollen.proto import swarm_pb2_grpc as pb_grpc

# Status codes that mean "your request is wrong" rather than "this server is unwell".
_CALLER_FAULT = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                 grpc.StatusCode.OUT_OF_RANGE}


def translate(address: str, err: grpc.RpcError) -> Exception:
    code = err.code() if hasattr(err, "code") else None
    detail = f"{code.name if code else 'ERROR'}: {err.details() if hasattr(err, 'details') else err}"
    if code in _CALLER_FAULT:
        return RequestRejected(address, detail)
    return ServerFailure(address, detail)


class ServerConnection:
    def __init__(self, address: str, max_message_bytes: int = 64 << 20):
        self.address = address
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.enable_retries", 0)]
        self.channel = grpc.insecure_channel(address, options=options)
        self.stub = pb_grpc.BlockServerStub(self.channel)

    def call(self, method: str, request, timeout: float):
        try:
            return getattr(self.stub, method)(request, timeout=timeout)
        except grpc.RpcError as err:
            raise translate(self.address, err) from err

    def open_stream(self, timeout: float | None = None) -> "InferenceStream":
        return InferenceStream(self, timeout)

    def close(self) -> None:
        self.channel.close()


class InferenceStream:
    """Send requests, wait for their responses (in order); errors become ServerFailure /
    RequestRejected. Responses are read on the caller's thread (no thread hand-off per step)
    until the first `receive` with a timeout (a pushed step's fallback, client/session.py); from
    then on a reader thread queues them, so that wait can time out. `send` may run ahead."""

    def __init__(self, conn: ServerConnection, timeout: float | None):
        self.address = conn.address
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._responses = conn.stub.Inference(iter(self._requests.get, None), timeout=timeout)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._reader: threading.Thread | None = None
        self._failed: Exception | None = None  # set once the stream broke (direct reads)

    def _start_reader(self) -> None:
        if self._reader is None:
            self._reader = threading.Thread(target=self._read, daemon=True, name=f"stream-{self.address}")
            self._reader.start()

    def _read(self) -> None:
        try:
            for response in self._responses:
                self._inbox.put(response)
            self._inbox.put(ServerFailure(self.address, "stream ended unexpectedly"))
        except grpc.RpcError as err:
            self._inbox.put(translate(self.address, err))

    def _next_direct(self) -> pb.InferenceResponse:
        """The next response read on this thread; a broken stream stays failed for later calls."""
        if self._failed is None:
            try:
                return next(self._responses)
            except StopIteration:
                self._failed = ServerFailure(self.address, "stream ended unexpectedly")
            except grpc.RpcError as err:
                self._failed = translate(self.address, err)
        raise self._failed

    def send(self, request: pb.InferenceRequest) -> None:
        self._requests.put(request)

    def receive(self, timeout: float | None = None) -> pb.InferenceResponse | None:
        """The next response; None if `timeout` (seconds) passed first."""
        if timeout is None and self._reader is None:
            return self._next_direct()
        if self._failed is not None:
            raise self._failed
        self._start_reader()
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, Exception):
            self._inbox.put(item)  # the stream stays failed for later calls
            raise item
        return item

    def call(self, request: pb.InferenceRequest) -> pb.InferenceResponse:
        self.send(request)
        return self.receive()

    def close(self) -> None:
        self._requests.put(None)
        self._responses.cancel()
