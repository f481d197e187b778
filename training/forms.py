"""The browser's forms for training, fine-tuning and scoring. They check the shape of what
was typed; `training.services` checks the rest (names, label sets, options) and says why."""

from __future__ import annotations

from django import forms

from labeling.models import SubjectSet
from training.ml.config import TrainingConfig

# The defaults shown in the form are the training defaults themselves.
DEFAULTS = TrainingConfig()
OPTION_NAMES = ("epochs", "batch_size", "learning_rate", "weight_decay", "patience", "flips",
                "seed")


class TrainForm(forms.Form):
    label_set = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    parent = forms.ChoiceField(
        required=False, label="Fine-tune from",
        help_text="a model version whose weights training starts from; empty trains a new model",
    )
    name = forms.CharField(required=False, max_length=100,
                           help_text="the version to register; empty for the next v0.N")
    epochs = forms.IntegerField(min_value=1, initial=DEFAULTS.epochs)
    batch_size = forms.IntegerField(min_value=1, initial=DEFAULTS.batch_size)
    learning_rate = forms.FloatField(min_value=0.0, initial=DEFAULTS.learning_rate)
    weight_decay = forms.FloatField(min_value=0.0, initial=DEFAULTS.weight_decay)
    patience = forms.IntegerField(
        min_value=1, initial=DEFAULTS.patience,
        help_text="epochs without a lower validation loss before stopping",
    )
    flips = forms.BooleanField(
        required=False, initial=DEFAULTS.flips,
        help_text="random vertical and horizontal flips of the training split",
    )
    seed = forms.IntegerField(min_value=0, initial=DEFAULTS.seed)

    def __init__(self, *args, version_names: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parent"].choices = [("", "none: train from scratch")] + [
            (name, name) for name in version_names
        ]

    def options(self) -> dict:
        return {name: self.cleaned_data[name] for name in OPTION_NAMES}


class ScoreForm(forms.Form):
    subject_set = forms.ModelChoiceField(
        SubjectSet.objects.select_related("project").order_by("project__name", "name"),
        help_text="every subject of the set with stamps gets this version's score",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["subject_set"].label_from_instance = (
            lambda subject_set: f"{subject_set.project.name} / {subject_set.name}"
        )
