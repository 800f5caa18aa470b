"""multipart/form-data read as a stream (python-multipart's push parser): the file part's bytes
are handed on as they arrive, never spooled to memory or a temporary file."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from servicekit.errors import ApiError

MAX_FIELD_BYTES = 1024  # form fields other than the file are short (job_type)


@dataclass
class PartStart:
    name: str
    filename: str | None


@dataclass
class PartData:
    # A view into the received chunk (immutable bytes), not a copy: the file's bytes are copied
    # once, when they are gathered into blocks.
    data: bytes | memoryview


@dataclass
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def _malformed(message: str) -> ApiError:
    return ApiError(400, "malformed_multipart", message)


def boundary_of(content_type: str | None) -> bytes:
    if not content_type:
        raise ApiError(
            415, "unsupported_media_type", "Send the file as multipart/form-data (field `file`)."
        )
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise ApiError(
            415, "unsupported_media_type", "Send the file as multipart/form-data (field `file`)."
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise _malformed("The multipart body has no boundary.")
    return boundary


@dataclass
class _Collector:
    events: list[Event] = field(default_factory=list)
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[bytes, bytes] = field(default_factory=dict)
    ended: bool = False

    def on_part_begin(self) -> None:
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        disposition = self.headers.get(b"content-disposition")
        if disposition is None:
            raise _malformed("A multipart part has no Content-Disposition header.")
        _, params = parse_options_header(disposition)
        name = params.get(b"name")
        if name is None:
            raise _malformed("A multipart part has no name.")
        filename = params.get(b"filename")
        self.events.append(
            PartStart(
                name=name.decode("utf-8", "replace"),
                filename=None if filename is None else filename.decode("utf-8", "replace"),
            )
        )

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self.events.append(PartData(memoryview(data)[start:end]))

    def on_part_end(self) -> None:
        self.events.append(PartEnd())

    def on_end(self) -> None:
        self.ended = True


async def multipart_events(
    content_type: str | None, body: AsyncIterator[bytes]
) -> AsyncIterator[Event]:
    collector = _Collector()
    parser = MultipartParser(
        boundary_of(content_type),
        {
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
            "on_end": collector.on_end,
        },
    )
    async for chunk in body:
        if not chunk:
            continue
        try:
            parser.write(chunk)
        except ApiError:
            raise
        except Exception as exc:
            raise _malformed(f"The multipart body cannot be parsed: {exc}") from None
        events, collector.events = collector.events, []
        for event in events:
            yield event
    if not collector.ended:
        raise _malformed("The multipart body ended early (no closing boundary).")
