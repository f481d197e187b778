"""The review API: queues and subject dossiers, for staff and experts. Views validate and call
a selector; labels are written through the reference-label endpoint of the labeling API."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling import roles
from labeling import selectors as labeling_selectors
from review import selectors
from review import serializers as s


class CanReview(BasePermission):
    message = "The review page and its API are for staff and experts."

    def has_permission(self, request, view):
        return roles.can_read_reference_labels(request.user)


class QueueView(APIView):
    permission_classes = [CanReview]

    @extend_schema(parameters=[s.QueueParamsSerializer], responses=s.QueuePageSerializer)
    def get(self, request, workflow_id: int, name: str):
        params = s.QueueParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        given = params.validated_data
        workflow = labeling_selectors.workflow_get(workflow_id)
        reference_set = selectors.reference_set_get(given["set"]) if "set" in given else None
        page = selectors.review_queue(
            workflow=workflow,
            name=name,
            run=selectors.review_run(workflow, given.get("run")),
            reference_set=reference_set,
            origin=given["origin"],
            seed=given.get("seed", 0),
            offset=given["offset"],
            limit=given["limit"],
        )
        return Response(s.QueuePageSerializer(page).data)


class SubjectDossierView(APIView):
    permission_classes = [CanReview]

    @extend_schema(parameters=[s.DossierParamsSerializer], responses=s.DossierSerializer)
    def get(self, request, subject_id: int):
        params = s.DossierParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        workflow = labeling_selectors.workflow_get(params.validated_data["workflow"])
        dossier = selectors.subject_dossier(
            subject_id=subject_id,
            workflow=workflow,
            run=selectors.review_run(workflow, params.validated_data.get("run")),
        )
        return Response(s.DossierSerializer(dossier).data)
