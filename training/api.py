"""The model-registry API, for the ML team and staff: versions (with their evaluation, weights
and ONNX files, and their scores), training jobs and scoring jobs. Views validate and call a
selector or service."""

from __future__ import annotations

from django.http import FileResponse, StreamingHttpResponse
from django.utils.http import quote_etag
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from aggregation.labelsets.api import etag_matches
from labeling import roles
from labeling.reference_csv import csv_lines
from training import selectors, services, storage
from training.models import ModelVersion, ScoringJob, TrainingJob

SCORES_CSV_COLUMNS = ("subject_id", "external_id", "origin", "reliability")
# A version's files never change: the ETag (their sha256) lets clients check.
FILE_CACHE_CONTROL = "private, max-age=31536000, immutable"


class CanUseModels(BasePermission):
    message = "The model registry is for the ML team and staff."

    def has_permission(self, request, view):
        # Models are trained on label sets (reference labels, origins): the same readers.
        return roles.can_use_label_sets(request.user)


class RegistryPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


# --- serializers ---------------------------------------------------------------------------


class ModelVersionSerializer(serializers.ModelSerializer):
    parent = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    label_set = serializers.SlugRelatedField(slug_field="number", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    url = serializers.HyperlinkedIdentityField(view_name="api-model-version",
                                               lookup_field="name")
    weights = serializers.HyperlinkedIdentityField(view_name="api-model-weights",
                                                   lookup_field="name")
    onnx = serializers.HyperlinkedIdentityField(view_name="api-model-onnx", lookup_field="name")
    evaluation = serializers.SerializerMethodField(
        help_text="metrics on the test split of the label set it was trained on"
    )

    class Meta:
        model = ModelVersion
        fields = ["name", "url", "parent", "label_set", "options", "history", "best_epoch",
                  "weights", "weights_sha256", "onnx", "onnx_sha256", "onnx_max_difference",
                  "device", "notes", "created_by", "created_at", "evaluation"]

    def get_evaluation(self, version: ModelVersion) -> dict:
        # `own_evaluations`, prefetched by the selectors: one query for a page of versions.
        return version.own_evaluations[0].metrics if version.own_evaluations else {}


class TrainingJobSerializer(serializers.ModelSerializer):
    label_set = serializers.SlugRelatedField(slug_field="number", read_only=True)
    parent = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True,
                                                 allow_null=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    url = serializers.HyperlinkedIdentityField(view_name="api-training-job")

    class Meta:
        model = TrainingJob
        fields = ["id", "url", "name", "label_set", "parent", "options", "trigger", "status",
                  "error", "epoch", "batches_done", "batches_total", "history", "heartbeat_at",
                  "model_version", "created_by", "created_at", "started_at", "finished_at"]


class TrainingRequestSerializer(serializers.Serializer):
    """Types only: TrainingConfig.from_dict and the service decide what is valid."""

    label_set = serializers.IntegerField(help_text="the label set number to train on")
    parent = serializers.CharField(required=False, allow_null=True, default=None,
                                   help_text="fine-tune from this version (none: from scratch)")
    name = serializers.CharField(required=False, allow_null=True, default=None,
                                 help_text="the version to register (default: the next v0.N)")
    epochs = serializers.IntegerField(required=False)
    patience = serializers.IntegerField(required=False)
    flips = serializers.BooleanField(required=False)
    seed = serializers.IntegerField(required=False)


class ScoringJobSerializer(serializers.ModelSerializer):
    model_version = serializers.SlugRelatedField(slug_field="name", read_only=True)
    subject_set = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True,
                                              allow_null=True)
    url = serializers.HyperlinkedIdentityField(view_name="api-scoring-job")

    class Meta:
        model = ScoringJob
        fields = ["id", "url", "model_version", "subject_set", "status", "error", "n_total",
                  "n_done", "created_by", "created_at", "started_at", "finished_at"]


class ScoringRequestSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="the model version, e.g. v0.2")
    subject_set = serializers.CharField(help_text="the subject set's name")
    project = serializers.CharField(required=False, allow_null=True, default=None,
                                    help_text="the project, when several use the set's name")


# --- views ---------------------------------------------------------------------------------


class ModelVersionListView(generics.ListAPIView):
    """Model versions, newest first, each with its evaluation."""

    permission_classes = [CanUseModels]
    serializer_class = ModelVersionSerializer
    pagination_class = RegistryPagination

    def get_queryset(self):
        return selectors.versions_with_own_evaluation()


class ModelVersionDetailView(APIView):
    permission_classes = [CanUseModels]

    @extend_schema(responses=ModelVersionSerializer)
    def get(self, request, name: str):
        version = selectors.version_with_own_evaluation(name)
        return Response(ModelVersionSerializer(version, context={"request": request}).data)


class _VersionFileView(APIView):
    """One registered file of a version, with its sha256 as ETag."""

    permission_classes = [CanUseModels]
    path_field: str
    sha256_field: str
    content_type: str

    def perform_content_negotiation(self, request, force=False):
        # A client asking for the file's own type is not refused: negotiation only picks how
        # errors are written, JSON.
        return super().perform_content_negotiation(request, force=True)

    def get(self, request, name: str):
        version = selectors.version_get(name)
        etag = quote_etag(getattr(version, self.sha256_field))
        headers = {"ETag": etag, "Cache-Control": FILE_CACHE_CONTROL}
        if etag_matches(request.headers.get("If-None-Match"), etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        path = storage.path_of(getattr(version, self.path_field))
        try:
            handle = open(path, "rb")  # noqa: SIM115 - FileResponse closes it
        except FileNotFoundError:
            return Response({"error": "file_missing",
                             "detail": f"{version.name}'s {path.name} is missing on the server"},
                            status=status.HTTP_500_INTERNAL_SERVER_ERROR)
        response = FileResponse(handle, as_attachment=True,
                                filename=f"{version.name}-{path.name}",
                                content_type=self.content_type)
        for header, value in headers.items():
            response[header] = value
        return response


_FILE_RESPONSES = {
    200: OpenApiResponse(OpenApiTypes.BINARY, "the file"),
    304: OpenApiResponse(description="If-None-Match matched the ETag"),
    404: OpenApiResponse(description="no such version"),
}


@extend_schema(responses=_FILE_RESPONSES)
class ModelWeightsView(_VersionFileView):
    """The version's weights (safetensors, the RealBogusCNN state_dict)."""

    path_field, sha256_field = "weights_path", "weights_sha256"
    content_type = "application/octet-stream"


@extend_schema(responses=_FILE_RESPONSES)
class ModelOnnxView(_VersionFileView):
    """The version exported to ONNX: input `stamps` (N, 3, 51, 51) float32 raw (NaN allowed),
    output `reliability` (N,)."""

    path_field, sha256_field = "onnx_path", "onnx_sha256"
    content_type = "application/onnx"


class ModelScoresView(APIView):
    """Every reliability the version stored, as CSV, streamed; `subject_set` narrows it."""

    permission_classes = [CanUseModels]

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[OpenApiParameter("subject_set", str), OpenApiParameter("project", str)],
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, "CSV")},
    )
    def get(self, request, name: str):
        version = selectors.version_get(name)
        subject_set = None
        if request.query_params.get("subject_set"):
            subject_set = selectors.subject_set_find(request.query_params["subject_set"],
                                                     request.query_params.get("project"))
        rows = ((subject_id, external_id, origin, f"{reliability:.6f}")
                for subject_id, external_id, origin, reliability
                in selectors.scores_of(version, subject_set))
        response = StreamingHttpResponse(csv_lines(rows, header=SCORES_CSV_COLUMNS),
                                         content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{version.name}-scores.csv"'
        return response


class TrainingJobListView(generics.ListAPIView):
    """Training jobs, newest first; POST requests one (202), queued on the `training` queue."""

    permission_classes = [CanUseModels]
    serializer_class = TrainingJobSerializer
    pagination_class = RegistryPagination

    def get_queryset(self):
        return selectors.training_jobs_list()

    @extend_schema(request=TrainingRequestSerializer, responses={202: TrainingJobSerializer})
    def post(self, request):
        data = TrainingRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        given = dict(data.validated_data)
        label_set, parent, name = given.pop("label_set"), given.pop("parent"), given.pop("name")
        job = services.training_job_create(label_set, parent=parent, name=name, options=given,
                                           trigger=TrainingJob.Trigger.API,
                                           created_by=request.user)
        job.refresh_from_db()  # with eager Celery (no broker) it has run by now
        return Response(TrainingJobSerializer(job, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)


class TrainingJobDetailView(APIView):
    """One training job and its progress: epoch, batches of the current epoch, loss history."""

    permission_classes = [CanUseModels]

    @extend_schema(responses=TrainingJobSerializer)
    def get(self, request, pk: int):
        job = selectors.training_job_get(pk)
        return Response(TrainingJobSerializer(job, context={"request": request}).data)


class ScoringJobListView(generics.ListAPIView):
    """Scoring jobs, newest first; POST requests one (202), queued on the `scoring` queue."""

    permission_classes = [CanUseModels]
    serializer_class = ScoringJobSerializer
    pagination_class = RegistryPagination

    def get_queryset(self):
        return selectors.scoring_jobs_list()

    @extend_schema(request=ScoringRequestSerializer, responses={202: ScoringJobSerializer})
    def post(self, request):
        data = ScoringRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.scoring_job_create(
            data.validated_data["model"], data.validated_data["subject_set"],
            project=data.validated_data["project"], created_by=request.user,
        )
        job.refresh_from_db()
        return Response(ScoringJobSerializer(job, context={"request": request}).data,
                        status=status.HTTP_202_ACCEPTED)


class ScoringJobDetailView(APIView):
    permission_classes = [CanUseModels]

    @extend_schema(responses=ScoringJobSerializer)
    def get(self, request, pk: int):
        job = selectors.scoring_job_get(pk)
        return Response(ScoringJobSerializer(job, context={"request": request}).data)

