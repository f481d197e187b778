"""Validation and shapes of the labeling API. What volunteers receive never carries truth,
origin, scores, other volunteers' answers or reference labels."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from labeling.models import ReferenceLabel, ReferenceLabelChange, ReferenceSet, Subject, Workflow
from labeling.records import ANSWERS, EXPLANATION_MAX_LENGTH, REFERENCE_LABELS, STAMP_KINDS
from labeling.selectors import MAX_QUEUE_SIZE


class WorkflowSerializer(serializers.ModelSerializer):
    project = serializers.CharField(source="project.name")
    answers = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Workflow
        fields = ["id", "slug", "project", "question", "answers", "active"]


def image_urls(subject_id: int) -> dict[str, str]:
    return {
        kind: reverse("subject-image", kwargs={"subject_id": subject_id, "kind": kind})
        for kind in STAMP_KINDS
    }


class QueuedSubjectSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    images = serializers.DictField(child=serializers.CharField())
    token = serializers.CharField(
        help_text="send it back with the answer: it proves the subject was served to you"
    )


class QueueSerializer(serializers.Serializer):
    finished = serializers.BooleanField(
        help_text="nothing is left for this volunteer (reference subjects alone do not count)"
    )
    n_classified = serializers.IntegerField(help_text="the volunteer's count in this workflow")
    subjects = QueuedSubjectSerializer(many=True)


class QueueParamsSerializer(serializers.Serializer):
    n = serializers.IntegerField(default=10, min_value=1, max_value=MAX_QUEUE_SIZE)
    exclude = serializers.CharField(
        required=False, default="", help_text="comma-separated subject ids the client holds"
    )

    def validate_exclude(self, value: str) -> frozenset[int]:
        try:
            return frozenset(int(part) for part in value.split(",") if part.strip())
        except ValueError:
            raise serializers.ValidationError("exclude must be comma-separated integers") from None


class ClassificationCreateSerializer(serializers.Serializer):
    workflow = serializers.IntegerField(min_value=1)
    subject = serializers.IntegerField(min_value=1)
    answer = serializers.ChoiceField(choices=ANSWERS)
    client_id = serializers.UUIDField(help_text="made by the client; makes retries idempotent")
    token = serializers.CharField(
        max_length=200, help_text="the subject's token from your queue: an answer counts only "
        "for a subject served to you (403 not_served otherwise)",
    )
    answered_at = serializers.DateTimeField(required=False, allow_null=True)


class WorkflowProgressSerializer(serializers.Serializer):
    active = serializers.BooleanField()
    finished = serializers.BooleanField(
        help_text="done for everyone: inactive, or every subject it serves has retired"
    )


class ReferenceFeedbackSerializer(serializers.Serializer):
    label = serializers.CharField(help_text="the experts' answer")
    explanation = serializers.CharField(allow_blank=True)


class ClassificationResultSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="classification.pk")
    client_id = serializers.UUIDField(source="classification.client_id")
    workflow = serializers.IntegerField(source="classification.workflow_id")
    subject = serializers.IntegerField(source="classification.subject_id")
    answer = serializers.CharField(source="classification.answer")
    counted = serializers.BooleanField(source="classification.counted")
    created_at = serializers.DateTimeField(source="classification.created_at")
    subject_retired = serializers.BooleanField()
    feedback = ReferenceFeedbackSerializer(
        allow_null=True, default=None,
        help_text="only when the workflow shows feedback and the subject is a reference subject",
    )


class SubjectPixelsSerializer(serializers.Serializer):
    """A subject's stamps as float32 values (labeling.pixel_payload): each stamp's display
    window, rows x columns (a clipped stamp is not square), in picture order (the top row
    first, so FITS row 0 last), little-endian, row by row, in base64; NaN means no data."""

    unit = serializers.CharField(allow_null=True, help_text="e.g. nJy; null when not known")
    encoding = serializers.CharField(help_text="float32-le-base64")
    stamps = serializers.DictField(child=serializers.CharField(),
                                   help_text="template, science, difference")
    shape = serializers.DictField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2,
                                    max_length=2),
        help_text="per stamp kind, its [rows, columns]",
    )
    centre = serializers.DictField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2,
                                    max_length=2),
        help_text="per stamp kind, the [row, column] of the detection pixel in its rows",
    )
    zscale = serializers.DictField(child=serializers.ListField(
        child=serializers.FloatField(), allow_null=True), help_text="[low, high] per stamp")
    display = serializers.DictField(help_text="how the served images draw no data and the centre")


class TutorialExampleSerializer(serializers.Serializer):
    subject = serializers.IntegerField(source="subject_id")
    label = serializers.CharField()
    explanation = serializers.CharField()
    images = serializers.SerializerMethodField()

    def get_images(self, example) -> dict[str, str]:
        return image_urls(example.subject_id)


class TutorialSerializer(serializers.Serializer):
    examples = TutorialExampleSerializer(many=True)


class SubjectDetailSerializer(serializers.ModelSerializer):
    """The whole subject, for staff, experts and the ML team."""

    images = serializers.SerializerMethodField()

    class Meta:
        model = Subject
        fields = [
            "id", "external_id", "subject_set", "origin", "snr", "psf_flux", "psf_flux_err",
            "ra", "dec", "band", "reliability", "metadata", "stamp_size", "original_shapes",
            "source", "created_at", "images",
        ]

    def get_images(self, subject: Subject) -> dict[str, str]:
        return image_urls(subject.pk)


class ReferenceSetSerializer(serializers.ModelSerializer):
    team = serializers.CharField(source="team.name")
    n_labels = serializers.IntegerField(read_only=True)

    class Meta:
        model = ReferenceSet
        fields = ["id", "name", "team", "description", "n_labels"]


class ReferenceLabelSerializer(serializers.ModelSerializer):
    expert = serializers.CharField(source="expert.username", default=None)

    class Meta:
        model = ReferenceLabel
        fields = ["subject", "label", "explanation", "expert", "created_at", "updated_at"]


class ReferenceLabelWriteSerializer(serializers.Serializer):
    subject = serializers.IntegerField(min_value=1)
    label = serializers.ChoiceField(
        choices=REFERENCE_LABELS, help_text="unsure is kept but never counts as reference truth"
    )
    explanation = serializers.CharField(
        max_length=EXPLANATION_MAX_LENGTH, allow_blank=True, default="",
        help_text="replaces the label's explanation (shown to volunteers as feedback)",
    )
    source = serializers.ChoiceField(
        choices=[ReferenceLabelChange.Source.API, ReferenceLabelChange.Source.REVIEW],
        default=ReferenceLabelChange.Source.API,
        help_text="where the expert labelled: recorded in the label's history",
    )


class ReferenceLabelChangeSerializer(serializers.ModelSerializer):
    expert = serializers.CharField(source="expert.username", default=None)

    class Meta:
        model = ReferenceLabelChange
        fields = ["old_label", "new_label", "old_explanation", "new_explanation", "expert",
                  "source", "changed_at"]


class DisagreementSerializer(serializers.Serializer):
    subject = serializers.IntegerField(source="subject_id")
    label = serializers.CharField(help_text="this set's label")
    other_set = serializers.CharField()
    other_team = serializers.CharField()
    other_label = serializers.CharField()
    other_expert = serializers.CharField(allow_null=True)


class TeamMemberSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
