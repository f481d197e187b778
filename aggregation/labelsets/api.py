"""The label-set API, for the ML team and staff: list, read, download (streamed, resumable),
and request an export. Views validate and call a selector or service; they hold no logic but
the HTTP of the download (conditional requests and byte ranges)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.http import StreamingHttpResponse
from django.utils.http import content_disposition_header, parse_etags, quote_etag
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregation.labelsets import selectors
from aggregation.labelsets.services import ExportOptions, label_set_export_queue
from aggregation.models import LabelSet, LabelSetExport
from labeling import roles

# Bytes per chunk read from disk and written to the client: the download's memory bound.
DOWNLOAD_CHUNK_BYTES = 256 * 1024
ARCHIVE_CONTENT_TYPE = "application/x-tar"
# A label set never changes once exported; the ETag (its sha256) still lets clients check.
ARCHIVE_CACHE_CONTROL = "private, max-age=31536000, immutable"
_SINGLE_BYTE_RANGE = re.compile(r"bytes=\s*(\d*)\s*-\s*(\d*)\s*", re.ASCII)


# --- byte ranges (RFC 9110 section 14), pure ------------------------------------------------


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start` to `end` of a file, both included (as Content-Range writes them)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class RangeNotSatisfiable(Exception):
    """A well-formed range that selects no byte of the file: answered 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one byte range `header` asks of a `size`-byte file, or None to send the whole file.

    Handles `bytes=a-b` (b past the end is cut to the end), `bytes=a-` and `bytes=-n` (the
    last n bytes). A header that is absent, malformed, in another unit or asks for several
    ranges is ignored (None), as RFC 9110 allows: the client then gets the whole file with
    200, never wrong bytes. Raises RangeNotSatisfiable when the range starts past the end or
    is an empty suffix.
    """
    if header is None:
        return None
    match = _SINGLE_BYTE_RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = _at_most(last, size)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"bytes=-{last[:20]} of a {size}-byte file")
        return ByteRange(size - suffix, size - 1)
    if last and _numeric_order(last) < _numeric_order(first):
        return None
    start = _at_most(first, size)
    if start >= size:
        raise RangeNotSatisfiable(f"bytes={first[:20]}- of a {size}-byte file")
    return ByteRange(start, _at_most(last, size - 1) if last else size - 1)


def _numeric_order(digits: str) -> tuple[int, str]:
    """A key that orders decimal strings as their numbers, without converting them: a header
    may carry more digits than int() accepts (4,300), and they must not cost a 500."""
    significant = digits.lstrip("0")
    return len(significant), significant


def _at_most(digits: str, ceiling: int) -> int:
    """min(int(digits), ceiling), converting only numbers no longer than the ceiling."""
    if _numeric_order(digits) > _numeric_order(str(ceiling)):
        return ceiling
    return int(digits)


def file_chunks(path: Path, start: int, length: int,
                chunk_size: int = DOWNLOAD_CHUNK_BYTES) -> Iterator[bytes]:
    """`length` bytes of `path` from `start`, at most `chunk_size` at a time. The file is opened
    when the first chunk is asked for and closed when the response is closed."""
    with open(path, "rb") as handle:
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(chunk_size, remaining))
            if not chunk:
                # Cut the connection short rather than let the client believe it has it all.
                raise OSError(f"{path} ended {remaining} bytes before the registered size")
            remaining -= len(chunk)
            yield chunk


def etag_matches(header: str | None, etag: str) -> bool:
    """If-None-Match: weak comparison against any of the listed tags, or `*`."""
    if not header:
        return False
    tags = {tag.removeprefix("W/") for tag in parse_etags(header)}
    return "*" in tags or etag in tags


# --- serializers ---------------------------------------------------------------------------


class LabelSetSerializer(serializers.ModelSerializer):
    workflow = serializers.SlugRelatedField(source="run.workflow", slug_field="slug",
                                            read_only=True)
    reference_sets = serializers.SlugRelatedField(source="run.reference_sets", slug_field="name",
                                                  many=True, read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    download = serializers.HyperlinkedIdentityField(
        view_name="label-set-download", lookup_field="number", lookup_url_kwarg="number"
    )

    class Meta:
        model = LabelSet
        fields = ["number", "run", "workflow", "reference_sets", "scenario", "options",
                  "n_subjects", "archive_sha256", "archive_size", "fine_tune_from",
                  "created_by", "created_at", "download", "manifest"]


class ExportJobSerializer(serializers.ModelSerializer):
    label_set = serializers.SlugRelatedField(slug_field="number", read_only=True, allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    url = serializers.HyperlinkedIdentityField(view_name="label-set-export",
                                               lookup_url_kwarg="job_id")

    class Meta:
        model = LabelSetExport
        fields = ["id", "url", "run", "options", "fine_tune_from", "status", "error",
                  "label_set", "created_by", "created_at", "finished_at"]


class ExportRequestSerializer(serializers.Serializer):
    """Types only: the export's own ExportOptions.from_dict decides what is valid."""

    run = serializers.IntegerField(help_text="the aggregation run to export")
    scenario = serializers.ChoiceField(choices=LabelSet.Scenario.choices)
    balance = serializers.CharField(required=False)
    split = serializers.ListField(child=serializers.FloatField(), required=False,
                                 help_text="train, validation, test fractions")
    seed = serializers.IntegerField(required=False)
    stratify = serializers.CharField(required=False, allow_null=True)
    mix_injections = serializers.JSONField(required=False, allow_null=True)
    min_snr = serializers.FloatField(required=False, allow_null=True)
    fine_tune_from = serializers.CharField(
        required=False, allow_blank=True, default="",
        help_text="the model version to fine-tune from once the export commits",
    )


# --- views ---------------------------------------------------------------------------------


class CanUseLabelSets(BasePermission):
    message = "Label sets are for the ML team and staff."

    def has_permission(self, request, view):
        return roles.can_use_label_sets(request.user)


class LabelSetPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class LabelSetListView(generics.ListAPIView):
    """Label sets, newest first, with their manifests; POST requests a new export."""

    permission_classes = [CanUseLabelSets]
    serializer_class = LabelSetSerializer
    pagination_class = LabelSetPagination

    def get_queryset(self):
        return selectors.label_sets_list()

    @extend_schema(request=ExportRequestSerializer, responses={202: ExportJobSerializer})
    def post(self, request):
        data = ExportRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        options = dict(data.validated_data)
        run_id, fine_tune_from = options.pop("run"), options.pop("fine_tune_from")
        job = label_set_export_queue(run_id, ExportOptions.from_dict(options),
                                     created_by=request.user, fine_tune_from=fine_tune_from)
        return Response(ExportJobSerializer(job, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)


class LabelSetDetailView(APIView):
    permission_classes = [CanUseLabelSets]

    @extend_schema(responses=LabelSetSerializer)
    def get(self, request, number: int):
        label_set = selectors.label_set_get(number)
        return Response(LabelSetSerializer(label_set, context={"request": request}).data)


class ExportJobDetailView(APIView):
    permission_classes = [CanUseLabelSets]

    @extend_schema(responses=ExportJobSerializer)
    def get(self, request, job_id: int):
        job = selectors.export_job_get(job_id)
        return Response(ExportJobSerializer(job, context={"request": request}).data)


class LabelSetDownloadView(APIView):
    """The label set's archive (an uncompressed tar of its folder), streamed from disk.

    `ETag` is the archive's sha256; `Range: bytes=a-b` resumes (206), guarded by `If-Range`;
    `If-None-Match` with the ETag answers 304.
    """

    permission_classes = [CanUseLabelSets]

    def perform_content_negotiation(self, request, force=False):
        # A client asking for the tar itself (Accept: application/x-tar) is not refused:
        # negotiation only picks how errors are written, JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        responses={
            (200, ARCHIVE_CONTENT_TYPE): OpenApiResponse(OpenApiTypes.BINARY, "the archive"),
            (206, ARCHIVE_CONTENT_TYPE): OpenApiResponse(OpenApiTypes.BINARY, "a byte range"),
            304: OpenApiResponse(description="If-None-Match matched the ETag"),
            404: OpenApiResponse(description="no such label set"),
            416: OpenApiResponse(description="the range starts past the end"),
            500: OpenApiResponse(description="the archive is missing or changed on disk"),
        }
    )
    def get(self, request, number: int):
        label_set = selectors.label_set_get(number)
        archive = selectors.label_set_archive(label_set)
        etag = quote_etag(label_set.archive_sha256)
        common = {"ETag": etag, "Accept-Ranges": "bytes", "Cache-Control": ARCHIVE_CACHE_CONTROL}
        if etag_matches(request.headers.get("If-None-Match"), etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=common)
        requested = request.headers.get("Range")
        # If-Range: the range holds only for this exact archive (strong comparison).
        if request.headers.get("If-Range", etag) != etag:
            requested = None
        try:
            byte_range = parse_range(requested, archive.size)
        except RangeNotSatisfiable as exc:
            return Response(
                {"error": "range_not_satisfiable", "detail": f"{exc}: nothing to send"},
                status=status.HTTP_416_REQUESTED_RANGE_NOT_SATISFIABLE,
                headers={**common, "Content-Range": f"bytes */{archive.size}"},
            )
        if byte_range is None:
            byte_range, status_code = ByteRange(0, archive.size - 1), status.HTTP_200_OK
        else:
            status_code = status.HTTP_206_PARTIAL_CONTENT
        response = StreamingHttpResponse(
            file_chunks(archive.path, byte_range.start, byte_range.length),
            status=status_code, content_type=ARCHIVE_CONTENT_TYPE, headers=common,
        )
        response["Content-Length"] = str(byte_range.length)
        response["Content-Disposition"] = content_disposition_header(True, archive.filename)
        if status_code == status.HTTP_206_PARTIAL_CONTENT:
            response["Content-Range"] = (
                f"bytes {byte_range.start}-{byte_range.end}/{archive.size}"
            )
        return response
