"""A multipart/form-data upload read as a stream, in constant memory.

FastAPI's ``UploadFile`` spools the whole file first (to a plaintext temp file past 1 MB);
here the request body is pulled chunk by chunk from a worker thread and the ``file`` part's
bytes go straight on (into the encrypted blob store): nothing but one network chunk is held.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from python_multipart.multipart import MultipartParser, parse_options_header

from appliance.errors import InvalidRequest

Pull = Callable[[], bytes | None]


def boundary_of(content_type: str) -> bytes:
    """The multipart boundary, or 422 when the request is not multipart/form-data."""
    kind, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Upload the file as multipart/form-data with a `file` field.")
    return boundary


class StreamedFilePart:
    """The ``file`` field of a multipart body: its filename, then its bytes as an iterator."""

    def __init__(self, boundary: bytes, pull: Pull, field: str = "file") -> None:
        self._pull = pull
        self._field = field.encode()
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._in_file = False
        self._file_seen = False
        self._file_done = False
        self._ended = False
        self._pending: deque[bytes] = deque()
        self.filename: str | None = None
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    # --- parser callbacks -----------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        if params.get(b"name") == self._field and not self._file_seen:
            self._in_file = self._file_seen = True
            raw = params.get(b"filename", b"upload")
            self.filename = raw.decode("utf-8", "replace")

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file and end > start:
            self._pending.append(bytes(data[start:end]))

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_done = True

    def _end(self) -> None:
        self._ended = True

    # --- reading --------------------------------------------------------------------------

    def _feed(self) -> bool:
        chunk = self._pull()
        if chunk is None:
            self._parser.finalize()
            self._ended = True
            return False
        if chunk:
            self._parser.write(chunk)
        return True

    def open(self) -> str:
        """Read up to the ``file`` part's headers; returns its filename."""
        while not self._file_seen:
            if self._ended or not self._feed():
                raise InvalidRequest("The upload has no `file` field.")
        assert self.filename is not None
        return self.filename

    def chunks(self) -> Iterator[bytes]:
        """The file part's bytes, as they arrive."""
        while True:
            while self._pending:
                yield self._pending.popleft()
            if self._file_done:
                return
            ended = self._ended or not self._feed()
            if ended and not self._file_done and not self._pending:
                raise InvalidRequest("The upload ended before the file did.")
