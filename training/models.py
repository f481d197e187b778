"""The model registry (ModelVersion), its evaluations, training and scoring jobs, and the
reliability each version gave each subject.

Files live under MODELS_ROOT (see storage.py): a version's weights and ONNX export, and the
checkpoint of a training job in progress. A ModelVersion never changes once registered.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from aggregation.models import LabelSet
from labeling.models import Subject, SubjectSet

# "v0.1", "v1.12", "v2": a letter v and dot-separated numbers, as DMTN-337 names its models.
VERSION_NAME_PATTERN = r"^v\d+(\.\d+)*$"
VERSION_NAME_MAX = 40
version_name_validator = RegexValidator(
    VERSION_NAME_PATTERN, "a model version is named like v0.1: v, then numbers separated by dots"
)


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Job(models.Model):
    """What every job of the registry records: its state, why it failed, who asked, when."""

    status = models.CharField(max_length=10, choices=JobStatus.choices,
                              default=JobStatus.PENDING)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-pk"]


class ModelVersion(models.Model):
    """One trained CNN: its lineage, its training data and options, its files and its metrics."""

    name = models.CharField(max_length=VERSION_NAME_MAX, unique=True,
                            validators=[version_name_validator])
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children",
        help_text="the version whose weights training started from; none for a base model",
    )
    label_set = models.ForeignKey(LabelSet, on_delete=models.PROTECT,
                                  related_name="model_versions")
    options = models.JSONField(help_text="the TrainingConfig it was trained with")
    history = models.JSONField(help_text="per epoch: train and validation loss, seconds")
    best_epoch = models.PositiveIntegerField(help_text="the epoch whose weights were kept")
    weights_path = models.CharField(max_length=300, help_text="safetensors, under MODELS_ROOT")
    weights_sha256 = models.CharField(max_length=64)
    onnx_path = models.CharField(max_length=300, help_text="ONNX export, under MODELS_ROOT")
    onnx_sha256 = models.CharField(max_length=64)
    onnx_max_difference = models.FloatField(
        help_text="largest |ONNX - PyTorch| score on the check stamps at export"
    )
    device = models.CharField(max_length=40, help_text="where it was trained (cpu, cuda)")
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self):
        return self.name


class Evaluation(models.Model):
    """A version's scores on one label set's test split, summarised by
    `training.ml.evaluation.evaluate` (curves, requirement, per origin, recall at rank)."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE,
                                      related_name="evaluations")
    label_set = models.ForeignKey(LabelSet, on_delete=models.PROTECT, related_name="evaluations")
    metrics = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "label_set"],
                                    name="one_evaluation_per_version_and_label_set")
        ]

    def __str__(self):
        return f"{self.model_version} on label set {self.label_set.number}"


class TrainingJob(Job):
    """A request to train a version, run on the `training` queue.

    Done means its ModelVersion exists: the job is marked done in the transaction that creates
    it. A worker that dies leaves the job running with a stale heartbeat; running the job again
    resumes from the checkpoint of the last finished epoch.
    """

    class Trigger(models.TextChoices):
        COMMAND = "command"
        API = "api"
        EXPORT = "export", "label-set export"
        WEB = "web", "the models pages"

    name = models.CharField(
        max_length=VERSION_NAME_MAX, blank=True, validators=[version_name_validator],
        help_text="the version it will register (empty for a request refused before naming)",
    )
    label_set = models.ForeignKey(LabelSet, on_delete=models.PROTECT,
                                  related_name="training_jobs")
    parent = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT,
                               related_name="fine_tuning_jobs")
    options = models.JSONField(help_text="the TrainingConfig")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    epoch = models.PositiveIntegerField(default=0, help_text="epochs finished")
    batches_done = models.PositiveIntegerField(default=0, help_text="in the current epoch")
    batches_total = models.PositiveIntegerField(default=0, help_text="per epoch")
    history = models.JSONField(default=list, help_text="per epoch: train and validation loss")
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="last sign of life of the worker running it")
    model_version = models.OneToOneField(ModelVersion, null=True, blank=True,
                                         on_delete=models.PROTECT, related_name="training_job")

    class Meta(Job.Meta):
        constraints = [
            # Two live jobs may not race to register the same version name.
            models.UniqueConstraint(
                fields=["name"], condition=~models.Q(status="failed"),
                name="one_live_training_job_per_version_name",
            )
        ]

    def __str__(self):
        return f"training job {self.pk}: {self.name} on label set {self.label_set_id}"


class ScoringJob(Job):
    """Score every subject of a subject set with a version, on the `scoring` queue. Running it
    again scores only the subjects this version has no score for yet."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT,
                                      related_name="scoring_jobs")
    subject_set = models.ForeignKey(SubjectSet, on_delete=models.CASCADE,
                                    related_name="scoring_jobs")
    n_total = models.PositiveIntegerField(default=0, help_text="subjects with stamps in the set")
    n_done = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"scoring job {self.pk}: {self.model_version} on {self.subject_set}"


class SubjectScore(models.Model):
    """The reliability (Pr(Real) by the CNN) one version gave one subject."""

    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="scores")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE,
                                      related_name="scores")
    reliability = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "subject"],
                                    name="one_score_per_version_and_subject")
        ]

    def __str__(self):
        return f"{self.model_version} scored subject {self.subject_id}: {self.reliability:.3f}"
