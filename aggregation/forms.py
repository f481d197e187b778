"""The browser's forms for starting aggregation runs and requesting label-set exports. They
only check the shape of what was typed; the services check the rest and say what is wrong."""

from __future__ import annotations

from django import forms

from aggregation.labelsets.services import BALANCES, STRATIFY_BY
from aggregation.models import AggregationRun, LabelSet
from labeling.models import Workflow
from labeling.records import DEFAULT_UNION_POLICY, UNION_POLICIES


class RunForm(forms.Form):
    workflow = forms.ModelChoiceField(Workflow.objects.order_by("slug"), to_field_name="slug")
    reference_sets = forms.CharField(
        max_length=300, help_text="e.g. rubin, or rubin+oxford for their union (in that order)"
    )
    mode = forms.ChoiceField(choices=AggregationRun.Mode.choices,
                             initial=AggregationRun.Mode.BATCH)
    union_policy = forms.ChoiceField(
        choices=[(p, p) for p in UNION_POLICIES], initial=DEFAULT_UNION_POLICY,
        help_text="what a union does with subjects its sets label differently",
    )
    prior = forms.FloatField(required=False, min_value=0.0, max_value=1.0,
                             help_text="Pr(Real) before any vote; empty for the default")


class ExportForm(forms.Form):
    run = forms.ModelChoiceField(
        AggregationRun.objects.none(),
        help_text="a finished aggregation run",
    )
    scenario = forms.ChoiceField(choices=LabelSet.Scenario.choices)
    balance = forms.ChoiceField(choices=[(b, b) for b in BALANCES])
    split = forms.CharField(initial="0.8,0.1,0.1", max_length=60,
                            help_text="train,validation,test fractions")
    seed = forms.IntegerField(min_value=0, initial=0)
    stratify = forms.ChoiceField(choices=[("none", "none")] + [(s, s) for s in STRATIFY_BY])
    mix_injections = forms.CharField(
        required=False, max_length=300,
        help_text="SUBJECTSET:FRACTION mixes that share of injected fakes into train; optional",
    )
    min_snr = forms.FloatField(required=False, min_value=0.0, help_text="optional")
    fine_tune_from = forms.CharField(
        required=False, max_length=100,
        help_text="a model version to fine-tune on the new set as soon as it is written",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Offered newest first; the ML team sees what a run is here, without opening it.
        runs = (AggregationRun.objects.filter(status=AggregationRun.Status.DONE)
                .select_related("workflow").order_by("-pk"))
        self.fields["run"].queryset = runs
        self.fields["run"].label_from_instance = (
            lambda run: f"run {run.pk}: {run.workflow.slug}, {run.reference_name}, {run.mode}"
        )

    def options(self) -> dict:
        """The export options, as `ExportOptions.from_dict` takes them."""
        data = self.cleaned_data
        options = {"scenario": data["scenario"], "balance": data["balance"],
                   "split": data["split"], "seed": data["seed"], "stratify": data["stratify"]}
        if data["mix_injections"]:
            options["mix_injections"] = data["mix_injections"]
        if data["min_snr"] is not None:
            options["min_snr"] = data["min_snr"]
        return options
