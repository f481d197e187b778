"""The labeling API. Views validate and call a service or selector; they hold no logic."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils.decorators import method_decorator
from django.utils.http import quote_etag
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import selectors, services
from labeling.api import serializers as s
from labeling.api.permissions import CanReadReferenceLabels, CanSeeSubjectTruth
from labeling.errors import LabelingError
from labeling.models import ReferenceSet, Subject, Workflow
from labeling.rendering import STRETCH_VERSION

# Stamps never change once ingested; a render changes only with the stretch version, which
# is part of the ETag.
IMAGE_MAX_AGE = 7 * 24 * 3600
# Part of the pixel values' ETag: bump it when their JSON form changes.
PIXELS_VERSION = 1


class HealthView(APIView):
    """Liveness: answers without touching the database (and the baseline of `make bench`)."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(responses={200: dict})
    def get(self, request):
        return Response({"status": "ok"})


class WorkflowListView(generics.ListAPIView):
    permission_classes = [AllowAny]
    serializer_class = s.WorkflowSerializer
    queryset = Workflow.objects.filter(active=True).select_related("project").order_by("pk")


def _enforce_csrf_for_anonymous(request) -> None:
    """Anonymous volunteers are known by their session cookie, so their writes need the same
    CSRF protection as signed-in ones (DRF checks CSRF only for session-authenticated users)."""
    if not request.user.is_authenticated:
        SessionAuthentication().enforce_csrf(request)


@method_decorator(ensure_csrf_cookie, name="get")
class QueueView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(parameters=[s.QueueParamsSerializer], responses=s.QueueSerializer)
    def get(self, request, workflow_id: int):
        params = s.QueueParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        workflow = selectors.workflow_get(workflow_id)
        queue = selectors.subject_queue(
            volunteer=services.volunteer_for_request(request),
            workflow=workflow,
            n=params.validated_data["n"],
            exclude=params.validated_data["exclude"],
        )
        payload = {
            "finished": queue.finished,
            "n_classified": queue.n_classified,
            "subjects": [{"id": pk, "images": s.image_urls(pk)} for pk in queue.subject_ids],
        }
        return Response(s.QueueSerializer(payload).data)


class ClassificationCreateView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        request=s.ClassificationCreateSerializer,
        responses={201: s.ClassificationResultSerializer, 200: s.ClassificationResultSerializer},
    )
    def post(self, request):
        _enforce_csrf_for_anonymous(request)
        data = s.ClassificationCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        outcome = services.classification_create(
            volunteer=services.volunteer_for_request(request),
            workflow_id=data.validated_data["workflow"],
            subject_id=data.validated_data["subject"],
            answer=data.validated_data["answer"],
            client_id=data.validated_data["client_id"],
            answered_at=data.validated_data.get("answered_at"),
            user_agent=request.headers.get("User-Agent", ""),
        )
        feedback = selectors.reference_feedback(
            workflow_id=outcome.classification.workflow_id,
            subject_id=outcome.classification.subject_id,
        )
        reply = {
            "classification": outcome.classification,
            "subject_retired": outcome.subject_retired,
            "feedback": feedback,
        }
        return Response(
            s.ClassificationResultSerializer(reply).data,
            status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK,
        )


class WorkflowProgressView(APIView):
    """Whether the workflow is finished for everyone (the classify page asks when a volunteer
    has nothing left, to tell "you have seen everything" from "the workflow is finished")."""

    permission_classes = [AllowAny]

    @extend_schema(responses=s.WorkflowProgressSerializer)
    def get(self, request, workflow_id: int):
        workflow = selectors.workflow_get(workflow_id)
        payload = {"active": workflow.active, "finished": selectors.workflow_finished(workflow)}
        return Response(s.WorkflowProgressSerializer(payload).data)


class TutorialView(APIView):
    """The tutorial's example subjects, with the experts' answers: they are never served."""

    permission_classes = [AllowAny]

    @extend_schema(responses=s.TutorialSerializer)
    def get(self, request, workflow_id: int):
        workflow = selectors.workflow_get(workflow_id)
        examples = selectors.tutorial_examples(workflow)
        return Response(s.TutorialSerializer({"examples": examples}).data)


def subject_image(request, subject_id: int, kind: str):
    """A stamp as PNG, for anyone who may classify: it shows pixels, nothing else."""
    etag = quote_etag(f"{subject_id}-{kind}-{STRETCH_VERSION}")
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        try:
            png = selectors.subject_image_png(subject_id, kind)
        except LabelingError as exc:
            return JsonResponse({"error": exc.code, "detail": exc.message}, status=exc.status_code)
        response = HttpResponse(png, content_type="image/png")
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={IMAGE_MAX_AGE}"
    return response


@extend_schema(responses=s.SubjectPixelsSerializer)
@api_view(["GET"])
@permission_classes([AllowAny])
def subject_pixels(request, subject_id: int):
    """A subject's stamp pixel values, for anyone who may classify (the hover readout)."""
    etag = quote_etag(f"{subject_id}-pixels-{PIXELS_VERSION}")
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponse(status=304)
    else:
        response = JsonResponse(selectors.subject_pixels(subject_id))
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={IMAGE_MAX_AGE}"
    return response


class SubjectDetailView(generics.RetrieveAPIView):
    permission_classes = [CanSeeSubjectTruth]
    serializer_class = s.SubjectDetailSerializer
    queryset = Subject.objects.all()
    lookup_url_kwarg = "subject_id"


class ReferenceSetListView(generics.ListAPIView):
    permission_classes = [CanReadReferenceLabels]
    serializer_class = s.ReferenceSetSerializer
    queryset = (
        ReferenceSet.objects.select_related("team").annotate(n_labels=Count("labels")).order_by("pk")
    )


class ReferenceLabelListCreateView(generics.ListAPIView):
    permission_classes = [CanReadReferenceLabels]
    serializer_class = s.ReferenceLabelSerializer

    def get_queryset(self):
        reference_set = get_object_or_404(ReferenceSet, pk=self.kwargs["set_id"])
        return reference_set.labels.select_related("expert").order_by("pk")

    @extend_schema(request=s.ReferenceLabelWriteSerializer, responses=s.ReferenceLabelSerializer)
    def post(self, request, set_id: int):
        data = s.ReferenceLabelWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        reference_set = get_object_or_404(ReferenceSet.objects.select_related("team"), pk=set_id)
        subject = get_object_or_404(Subject, pk=data.validated_data["subject"])
        label = services.reference_label_set(
            reference_set=reference_set,
            subject=subject,
            label=data.validated_data["label"],
            expert=request.user,
        )
        return Response(s.ReferenceLabelSerializer(label).data, status=status.HTTP_201_CREATED)
