"""The labeling API. Views validate and call a service or selector; they hold no logic."""

from __future__ import annotations

from django.db.models import Count
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.utils.decorators import method_decorator
from django.utils.http import quote_etag
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import reference_csv, selectors, services, serving
from labeling.api import serializers as s
from labeling.api.permissions import CanReadReferenceLabels, CanSeeSubjectTruth, IsStaff
from labeling.errors import LabelingError
from labeling.models import ReferenceSet, Subject, Workflow
from labeling.records import STAMP_KINDS
from labeling.rendering import STRETCH_VERSION

# Stamps never change once ingested; a render changes only with the stretch version, which
# is part of the ETag.
IMAGE_MAX_AGE = 7 * 24 * 3600
# Part of the pixel values' ETag: bump it when their JSON form changes.
PIXELS_VERSION = 3  # 3: float32 in base64 over each native window, picture order, "centre"


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
        queue = selectors.subject_queue_for_request(
            request, workflow_id,
            n=params.validated_data["n"],
            exclude=params.validated_data["exclude"],
        )
        identity = serving.identity_for_request(request)
        payload = {
            "finished": queue.finished,
            "n_classified": queue.n_classified,
            "subjects": [
                {"id": pk, "images": s.image_urls(pk),
                 "token": serving.served_token(identity, workflow_id, pk)}
                for pk in queue.subject_ids
            ],
        }
        response = Response(s.QueueSerializer(payload).data)
        serving.set_visitor_cookie(response, identity)
        return response


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
        outcome = services.classification_submit(
            request=request,
            workflow_id=data.validated_data["workflow"],
            subject_id=data.validated_data["subject"],
            answer=data.validated_data["answer"],
            client_id=data.validated_data["client_id"],
            token=data.validated_data["token"],
            answered_at=data.validated_data.get("answered_at"),
        )
        feedback = selectors.reference_feedback(
            workflow_id=outcome.classification.workflow_id,
            subject_id=outcome.classification.subject_id,
        ) if outcome.may_earn_feedback else None
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


class SubjectImageView(APIView):
    """A stamp as PNG, for anyone who may classify: it shows pixels, nothing else."""

    permission_classes = [AllowAny]

    def perform_content_negotiation(self, request, force=False):
        # An <img> asks for image/*: negotiation only picks how errors are written, JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[OpenApiParameter("kind", str, OpenApiParameter.PATH, enum=STAMP_KINDS)],
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, "the stamp, rendered"),
            304: OpenApiResponse(description="If-None-Match matched the ETag"),
        },
    )
    def get(self, request, subject_id: int, kind: str):
        etag = quote_etag(f"{subject_id}-{kind}-{STRETCH_VERSION}")
        if request.headers.get("If-None-Match") == etag:
            response = HttpResponse(status=304)
        else:
            try:
                png = selectors.subject_image_png(subject_id, kind)
            except LabelingError as exc:
                return JsonResponse({"error": exc.code, "detail": exc.message},
                                    status=exc.status_code)
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
    """A set's labels (staff and experts of any team read); its team's experts write."""

    permission_classes = [CanReadReferenceLabels]
    serializer_class = s.ReferenceLabelSerializer

    def get_queryset(self):
        reference_set = selectors.reference_set_get(self.kwargs["set_id"])
        return reference_set.labels.select_related("expert").order_by("pk")

    @extend_schema(
        request=s.ReferenceLabelWriteSerializer,
        responses={201: s.ReferenceLabelSerializer, 200: s.ReferenceLabelSerializer},
    )
    def post(self, request, set_id: int):
        """201 when the label is new, 200 when it changed or already was so."""
        data = s.ReferenceLabelWriteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        written = services.reference_label_write(
            reference_set=selectors.reference_set_get(set_id),
            subject=selectors.subject_get(data.validated_data["subject"]),
            label=data.validated_data["label"],
            explanation=data.validated_data["explanation"],
            expert=request.user,
            source=data.validated_data["source"],
        )
        created = written.outcome == services.LABEL_CREATED
        return Response(
            s.ReferenceLabelSerializer(written.label).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ReferenceLabelHistoryView(generics.ListAPIView):
    """Every change of one subject's label in a set, oldest first."""

    permission_classes = [CanReadReferenceLabels]
    serializer_class = s.ReferenceLabelChangeSerializer

    def get_queryset(self):
        return selectors.reference_label_history(
            selectors.reference_set_get(self.kwargs["set_id"]),
            selectors.subject_get(self.kwargs["subject_id"]),
        )


class ReferenceDisagreementsView(APIView):
    """Where other teams' sets label this set's subjects differently."""

    permission_classes = [CanReadReferenceLabels]

    @extend_schema(responses=s.DisagreementSerializer(many=True))
    def get(self, request, set_id: int):
        rows = selectors.reference_disagreements(selectors.reference_set_get(set_id))
        return Response(s.DisagreementSerializer(rows, many=True).data)


class ReferenceLabelsCsvView(APIView):
    """The set's labels as CSV, streamed; `import_reference_labels` reads it back."""

    permission_classes = [CanReadReferenceLabels]

    @extend_schema(responses={(200, "text/csv"): str})
    def get(self, request, set_id: int):
        reference_set = selectors.reference_set_get(set_id)
        response = StreamingHttpResponse(
            reference_csv.csv_lines(selectors.reference_labels_export_rows(reference_set)),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="{reference_set.name}-reference-labels.csv"'
        )
        return response


class TeamMembersView(APIView):
    """Staff add (POST) and remove (DELETE) a team's experts by user name."""

    permission_classes = [IsStaff]

    @extend_schema(request=s.TeamMemberSerializer,
                   responses={201: s.TeamMemberSerializer, 200: s.TeamMemberSerializer})
    def post(self, request, team_name: str):
        team, user = self._team_and_user(request, team_name)
        added = services.expert_team_member_add(team=team, user=user)
        return Response({"username": user.username},
                        status=status.HTTP_201_CREATED if added else status.HTTP_200_OK)

    @extend_schema(request=s.TeamMemberSerializer, responses={204: None})
    def delete(self, request, team_name: str):
        team, user = self._team_and_user(request, team_name)
        services.expert_team_member_remove(team=team, user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _team_and_user(self, request, team_name: str):
        data = s.TeamMemberSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return (selectors.expert_team_get(team_name),
                selectors.user_get(data.validated_data["username"]))
