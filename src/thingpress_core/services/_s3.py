"""`S3Service`: bounded reads, streaming, uploads and listings of S3 objects."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from thingpress_core.errors import InvalidRequestError
from thingpress_core.services._call import ServiceFacade
from thingpress_core.services._errors import map_botocore_error
from thingpress_core.services._models import S3Object, S3ObjectRef

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["DEFAULT_MAX_OBJECT_BYTES", "S3ObjectStream", "S3Service"]

DEFAULT_MAX_OBJECT_BYTES = 64 * 1024 * 1024
"""The default ceiling of `S3Service.get_object` and `S3Service.open_object`: 64 MiB."""

_READ_CHUNK = 1024 * 1024


class S3ObjectStream(io.RawIOBase):
    """A read-only, bounded stream of one S3 object's body (from `S3Service.open_object`).

    Reading past ``max_bytes`` raises `InvalidRequestError` (the size header was checked
    before the first byte; this guards against a body longer than announced). Network errors
    while reading are mapped like the call path's. Close it, or use it as a context manager.
    """

    def __init__(
        self, body: Any, *, bucket: str, key: str, size: int | None, etag: str | None, max_bytes: int
    ) -> None:
        super().__init__()
        self._body = body
        self.bucket = bucket
        self.key = key
        self.size = size
        self.etag = etag
        self._max_bytes = max_bytes
        self._read_so_far = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        chunk = self._take(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def readall(self) -> bytes:
        # io.RawIOBase.readall reads 8 KiB at a time; a bounded object can go in large chunks.
        chunks: list[bytes] = []
        while chunk := self._take(_READ_CHUNK):
            chunks.append(chunk)
        return b"".join(chunks)

    def _take(self, want: int) -> bytes:
        """Up to ``want`` bytes of the body; raises once more than ``max_bytes`` were read."""
        if want <= 0:
            return b""
        # Ask one byte past the limit so an over-long body is noticed, not silently cut.
        allowed = self._max_bytes + 1 - self._read_so_far
        chunk = self._read_body(min(want, allowed)) if allowed > 0 else b""
        self._read_so_far += len(chunk)
        if self._read_so_far > self._max_bytes:
            raise _too_large(self.bucket, self.key, None, self._max_bytes, "GetObject")
        return chunk

    def _read_body(self, amount: int) -> bytes:
        try:
            data = self._body.read(amount)
        except Exception as exc:
            from botocore.exceptions import BotoCoreError

            if isinstance(exc, BotoCoreError):
                raise map_botocore_error(exc, service="s3", operation="GetObject") from exc
            raise
        return bytes(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._body.close()
            finally:
                super().close()

    def __repr__(self) -> str:
        return f"S3ObjectStream(bucket={self.bucket!r}, key={self.key!r}, size={self.size})"


class S3Service(ServiceFacade):
    """Typed S3 facade on the one call path (keys ``s3.GetObject``, ``s3.PutObject``, ...).

    Args: as `IoTService`.
    """

    _service = "s3"
    _logger_name = "thingpress_core.services.s3"

    def _s3(self) -> S3Client:
        client: S3Client = self._service_client()
        return client

    def get_object(self, bucket: str, key: str, *, max_bytes: int = DEFAULT_MAX_OBJECT_BYTES) -> S3Object:
        """Read a whole object, refusing one larger than ``max_bytes`` before downloading it.

        One ``GetObject`` call: the announced ``ContentLength`` is checked before the body is
        read, and the read itself stops one byte past the limit. Raises
        `InvalidRequestError` (code ``ObjectTooLarge``) for an object over the limit,
        `ResourceNotFoundError` for a missing bucket or key.
        """
        with self.open_object(bucket, key, max_bytes=max_bytes) as stream:
            body = stream.readall()
        return S3Object(bucket=bucket, key=key, size=len(body), etag=stream.etag, body=body)

    def open_object(
        self, bucket: str, key: str, *, max_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    ) -> S3ObjectStream:
        """Open an object for streaming; the result is a bounded, closeable binary stream.

        Wrap it in ``io.BufferedReader`` or ``io.TextIOWrapper`` to read lines. Raises before
        any body byte is read when ``ContentLength`` is over ``max_bytes``.
        """
        if max_bytes < 0:
            raise InvalidRequestError(
                f"max_bytes must be >= 0, got {max_bytes}", service="s3", operation="GetObject"
            )
        response = self._call_path().call("GetObject", self._s3().get_object, {"Bucket": bucket, "Key": key})
        body = response["Body"]
        announced: object = response.get("ContentLength")
        size = announced if isinstance(announced, int) else None  # pyright: ignore[reportUnnecessaryIsInstance]
        if size is not None and size > max_bytes:
            body.close()
            raise _too_large(bucket, key, size, max_bytes, "GetObject")
        etag = response.get("ETag")
        return S3ObjectStream(body, bucket=bucket, key=key, size=size, etag=etag, max_bytes=max_bytes)

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes | str,
        *,
        content_type: str | None = None,
    ) -> S3ObjectRef:
        """Upload ``body`` (a ``str`` is UTF-8 encoded) as one ``PutObject`` call."""
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        params: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": data}
        if content_type:
            params["ContentType"] = content_type
        response = self._call_path().call("PutObject", self._s3().put_object, params)
        return S3ObjectRef(
            bucket=bucket,
            key=key,
            size=len(data),
            version_id=response.get("VersionId") or None,
            etag=response.get("ETag") or None,
        )

    def list_objects(self, bucket: str, prefix: str = "", *, page_size: int = 1000) -> Iterator[S3ObjectRef]:
        """Every object under ``prefix``, page by page (one ``ListObjectsV2`` call per page).

        Lazy: a page is fetched when the previous one is used up. A bad ``page_size`` raises
        `InvalidRequestError` here, not at the first ``next()``.
        """
        if not 1 <= page_size <= 1000:
            raise InvalidRequestError(
                f"page_size must be between 1 and 1000, got {page_size}",
                service="s3",
                operation="ListObjectsV2",
            )
        return self._pages(bucket, prefix, page_size)

    def _pages(self, bucket: str, prefix: str, page_size: int) -> Iterator[S3ObjectRef]:
        params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        path = self._call_path()
        while True:
            response = path.call("ListObjectsV2", self._s3().list_objects_v2, params)
            for item in response.get("Contents") or ():
                yield S3ObjectRef(
                    bucket=bucket,
                    key=item.get("Key", ""),
                    size=item.get("Size"),
                    etag=item.get("ETag") or None,
                )
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            params = {**params, "ContinuationToken": token}


def _too_large(
    bucket: str, key: str, size: int | None, max_bytes: int, operation: str
) -> InvalidRequestError:
    shown = f"{size} bytes" if size is not None else "more bytes than that"
    return InvalidRequestError(
        f"s3://{bucket}/{key} is {shown}; the limit is {max_bytes} bytes",
        service="s3",
        operation=operation,
        code="ObjectTooLarge",
    )
