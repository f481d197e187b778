"""Validation and shapes of the review API (staff and experts only)."""

from __future__ import annotations

from rest_framework import serializers

from labeling import surveys
from labeling.api.serializers import image_urls
from review import queues

MAX_PAGE = 200


class QueueParamsSerializer(serializers.Serializer):
    set = serializers.IntegerField(
        required=False, min_value=1,
        help_text="a reference set: its labelled subjects are left out of the queue",
    )
    run = serializers.IntegerField(
        required=False, min_value=1,
        help_text="the aggregation run that ranks the queue (default: the live run, else the "
        "latest finished one)",
    )
    origin = serializers.CharField(required=False, default="", help_text="for the origin queue")
    seed = serializers.IntegerField(
        required=False, min_value=0, max_value=2**63 - 1,
        help_text="for the random queue: the same seed gives the same audit",
    )
    offset = serializers.IntegerField(default=0, min_value=0)
    limit = serializers.IntegerField(default=50, min_value=1, max_value=MAX_PAGE)


class DossierParamsSerializer(serializers.Serializer):
    workflow = serializers.IntegerField(min_value=1)
    run = serializers.IntegerField(required=False, min_value=1)


class RunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reference_name = serializers.CharField()
    mode = serializers.CharField()
    live = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    prior = serializers.FloatField(source="parameters.prior")
    real_threshold = serializers.FloatField(source="parameters.real_threshold")
    bogus_threshold = serializers.FloatField(source="parameters.bogus_threshold")


class SubjectFactsSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    external_id = serializers.CharField()
    origin = serializers.CharField()
    snr = serializers.FloatField(allow_null=True)
    psf_flux = serializers.FloatField(allow_null=True)
    psf_flux_err = serializers.FloatField(allow_null=True)
    reliability = serializers.FloatField(allow_null=True, help_text="the model's score")
    band = serializers.CharField()
    ra = serializers.FloatField(allow_null=True)
    dec = serializers.FloatField(allow_null=True)
    images = serializers.SerializerMethodField()
    observed_at = serializers.SerializerMethodField(help_text="UTC; null when not known")
    unit = serializers.SerializerMethodField(help_text="of the stamps' values, e.g. nJy")
    links = serializers.SerializerMethodField(
        help_text="[{name, url}]: sky viewer and brokers, for the browser to open")

    def get_images(self, subject: dict) -> dict[str, str]:
        return image_urls(subject["id"])

    def get_observed_at(self, subject: dict) -> str | None:
        when = surveys.observed_at(subject["metadata"])
        return None if when is None else when.isoformat().replace("+00:00", "Z")

    def get_unit(self, subject: dict) -> str | None:
        return surveys.stamp_unit(subject["metadata"])

    def get_links(self, subject: dict) -> list[dict]:
        return surveys.sky_links(subject["ra"], subject["dec"], subject["metadata"])


class ReviewQueueSubjectSerializer(SubjectFactsSerializer):
    n_real = serializers.IntegerField(help_text="counted Real votes")
    n_bogus = serializers.IntegerField(help_text="counted Bogus votes")
    n_volunteers = serializers.IntegerField(help_text="distinct volunteers with a counted vote")
    p_real = serializers.FloatField(allow_null=True, help_text="SWAP posterior in the run")


class QueuePageSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=list(queues.QUEUES))
    run = RunSerializer(allow_null=True)
    total = serializers.IntegerField(help_text="subjects in the queue, labelled ones left out")
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()
    subjects = ReviewQueueSubjectSerializer(many=True)


class SkillSerializer(serializers.Serializer):
    p_real = serializers.FloatField(help_text="P(says Real | Real)")
    p_bogus = serializers.FloatField(help_text="P(says Bogus | Bogus)")
    contributes = serializers.BooleanField()


class VoteSerializer(serializers.Serializer):
    volunteer = serializers.IntegerField(source="volunteer_id")
    answer = serializers.CharField()
    created_at = serializers.DateTimeField()
    counted = serializers.BooleanField()
    not_counted_reason = serializers.CharField()
    skill = SkillSerializer(allow_null=True, help_text="the volunteer's skill in the run")


class VotesSerializer(serializers.Serializer):
    n_real = serializers.IntegerField(help_text="counted Real votes")
    n_bogus = serializers.IntegerField(help_text="counted Bogus votes")
    classifications = VoteSerializer(many=True)


class PosteriorSerializer(serializers.Serializer):
    p_real = serializers.FloatField()
    trajectory = serializers.ListField(child=serializers.FloatField())
    n_counted = serializers.IntegerField()
    label = serializers.CharField()
    stable = serializers.BooleanField()


class TeamLabelSerializer(serializers.Serializer):
    reference_set = serializers.IntegerField(source="reference_set_id")
    reference_set_name = serializers.CharField(source="reference_set.name")
    team = serializers.CharField(source="reference_set.team.name")
    label = serializers.CharField()
    explanation = serializers.CharField()
    expert = serializers.CharField(source="expert.username", default=None)
    updated_at = serializers.DateTimeField(help_text="when the label last changed")


class DossierSerializer(serializers.Serializer):
    subject = SubjectFactsSerializer()
    votes = VotesSerializer()
    run = RunSerializer(allow_null=True)
    posterior = PosteriorSerializer(allow_null=True)
    reference_labels = TeamLabelSerializer(many=True)
