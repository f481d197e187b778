"""Agreement statistics of the reference sets, for staff and experts."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.agreement import core, selectors
from labeling.api.permissions import CanReadReferenceLabels

CATEGORY_COUNTS_HELP = f"labels per category: {', '.join(core.CATEGORIES)}"


class AgreementParamsSerializer(serializers.Serializer):
    sets = serializers.CharField(
        required=False, help_text="comma-separated reference set names, e.g. rubin,oxford "
        "(default: every set); an unknown name is a 404",
    )

    def validate_sets(self, value: str) -> list[str]:
        names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
        if not names:
            raise serializers.ValidationError("name at least one reference set")
        return names


@extend_schema_field({"type": "array", "items": {"type": "array", "items": {"type": "integer"}}})
class MatrixField(serializers.Field):
    def to_representation(self, value):
        return value.tolist()


class AgreementSerializer(serializers.Serializer):
    n = serializers.IntegerField(help_text="subjects compared")
    confusion_matrix = MatrixField(
        source="confusion",
        help_text="counts, rows the first rater and columns the second, both in `categories` order",
    )
    percent_agreement = serializers.FloatField(
        allow_null=True, help_text="100 x the share with the same label; null with no subjects"
    )
    kappa = serializers.FloatField(
        allow_null=True, help_text="Cohen's kappa over all categories; null with no subjects or "
        "when both raters gave one and the same category to every subject",
    )
    kappa_band = serializers.CharField(help_text="Landis & Koch's words for kappa")
    n_real_bogus = serializers.IntegerField(help_text="subjects both called Real or Bogus")
    kappa_real_bogus = serializers.FloatField(
        allow_null=True, help_text="Cohen's kappa on the subjects both called Real or Bogus"
    )


class OriginBalanceSerializer(serializers.Serializer):
    origin = serializers.CharField(allow_blank=True)
    counts = serializers.DictField(child=serializers.IntegerField(),
                                   help_text=CATEGORY_COUNTS_HELP)


class SetSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="reference_set.pk")
    name = serializers.CharField(source="reference_set.name")
    team = serializers.CharField(source="reference_set.team.name")
    n_labels = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField(),
                                   help_text=CATEGORY_COUNTS_HELP)
    by_origin = OriginBalanceSerializer(many=True, help_text="class balance per origin handle")


class PairSummarySerializer(serializers.Serializer):
    first = serializers.CharField(source="first.name", help_text="the rows' reference set")
    second = serializers.CharField(source="second.name", help_text="the columns' reference set")
    agreement = AgreementSerializer(help_text="on the subjects both sets label")


class ExpertSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="expert_id")
    username = serializers.CharField()
    n_labelled = serializers.IntegerField(source="against_consensus.n_labelled")
    against_consensus = AgreementSerializer(
        source="against_consensus.with_consensus",
        help_text="rows the expert, columns the consensus (the most common label of the other "
        "raters on the subject; subjects with a tie or no other label are left out)",
    )


class AgreementReportSerializer(serializers.Serializer):
    categories = serializers.ListField(child=serializers.CharField())
    sets = SetSummarySerializer(many=True)
    pairs = PairSummarySerializer(many=True, help_text="every pair of the sets, by name")
    experts = ExpertSummarySerializer(many=True)


class ReferenceAgreementView(APIView):
    """Agreement between reference sets on shared subjects, of each expert with the consensus,
    and each set's class balance per origin."""

    permission_classes = [CanReadReferenceLabels]

    @extend_schema(
        parameters=[AgreementParamsSerializer],
        responses={
            200: AgreementReportSerializer,
            400: OpenApiResponse(description="`sets` names no set"),
            403: OpenApiResponse(description="not staff or an expert"),
            404: OpenApiResponse(description="`sets` names an unknown reference set"),
        },
    )
    def get(self, request):
        params = AgreementParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        report = selectors.reference_agreement(params.validated_data.get("sets"))
        payload = {"categories": core.CATEGORIES, "sets": report.sets, "pairs": report.pairs,
                   "experts": report.experts}
        return Response(AgreementReportSerializer(payload).data)
