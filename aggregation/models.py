"""Aggregation runs and what they produce: a posterior per subject and a skill per volunteer.

Models hold data and constraints only; every write goes through `aggregation.services`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from labeling.models import (
    ANSWER_CHOICES,
    ReferenceSet,
    Subject,
    Volunteer,
    Workflow,
)


class AggregationRun(models.Model):
    class Mode(models.TextChoices):
        BATCH = "batch", "batch: every skill learned first, then every subject scored"
        ONLINE = "online", "online: each classification uses the skill known at its time"
        EM = "em", "EM: skills also learned from non-reference subjects"

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    workflow = models.ForeignKey(
        Workflow, on_delete=models.CASCADE, related_name="aggregation_runs"
    )
    reference_sets = models.ManyToManyField(ReferenceSet, related_name="aggregation_runs")
    reference_name = models.CharField(
        max_length=300, help_text="the reference sets as given, e.g. rubin or rubin+oxford"
    )
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.BATCH)
    parameters = models.JSONField(help_text="the SwapParams the run used")
    # EM runs only (empty / null otherwise): how EM learned, and whether it settled.
    em_options = models.JSONField(
        default=dict, blank=True,
        help_text="EM runs: the EmOptions used (prior mode and strength, iteration cap, tolerance)",
    )
    em_iterations = models.PositiveIntegerField(null=True, blank=True)
    em_converged = models.BooleanField(
        null=True, blank=True, help_text="EM runs: settled within tolerance before the cap"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    # The live run of a workflow is kept current by every answer SWAP reads.
    live = models.BooleanField(default=False)
    # Online runs: answers up to this id are in the run (its replay and catch-up); later ones
    # are applied by each answer's own transaction once the run is live.
    replayed_through = models.BigIntegerField(null=True, blank=True)
    triggered_by = models.CharField(max_length=20, default="command")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True, help_text="seconds per stage")
    n_classifications = models.PositiveIntegerField(default=0)
    n_subjects = models.PositiveIntegerField(default=0)
    n_volunteers = models.PositiveIntegerField(default=0)
    n_contributing_volunteers = models.PositiveIntegerField(default=0)
    n_reference_subjects = models.PositiveIntegerField(default=0)
    summary = models.JSONField(
        default=dict, blank=True,
        help_text="breakdown table, reference conflicts, accuracy against simulated truth",
    )

    class Meta:
        ordering = ["-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow"], condition=models.Q(live=True), name="one_live_run_per_workflow"
            )
        ]

    def __str__(self):
        return f"run {self.pk}: {self.workflow} {self.mode} [{self.reference_name}]"


class SubjectPosterior(models.Model):
    # No database foreign keys: a run writes millions of posteriors at once, and PostgreSQL
    # checks a foreign key row by row at COMMIT (tens of seconds at Rubin scale). The batch
    # write checks its subjects in bulk instead (services._copy_posteriors joins them), and
    # deleting a run or a subject still deletes its posteriors (Django's CASCADE). The run
    # needs no index of its own: the unique (run, subject) index serves it.
    run = models.ForeignKey(AggregationRun, on_delete=models.CASCADE, related_name="posteriors",
                            db_constraint=False, db_index=False)
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="posteriors",
                                db_constraint=False)
    p_real = models.FloatField()
    # Log-odds keep the exact state where p_real has rounded to 0 or 1.
    log_odds = models.FloatField()
    trajectory = models.JSONField(default=list, help_text="Pr(Real) after each contributing vote")
    n_counted = models.PositiveIntegerField(default=0)
    label = models.CharField(
        max_length=10, choices=ANSWER_CHOICES, blank=True,
        help_text="the final Pr(Real) against the thresholds (the unstable scenario)",
    )
    stable = models.BooleanField(
        default=False, help_text="the label held for the last stability-window votes"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "subject"], name="one_posterior_per_run")
        ]

    def __str__(self):
        return f"{self.subject_id}: {self.p_real:.3f} (run {self.run_id})"


class VolunteerSkill(models.Model):
    run = models.ForeignKey(AggregationRun, on_delete=models.CASCADE, related_name="skills")
    volunteer = models.ForeignKey(Volunteer, on_delete=models.CASCADE, related_name="skills")
    p_real = models.FloatField(help_text="P(says Real | Real)")
    p_bogus = models.FloatField(help_text="P(says Bogus | Bogus)")
    n_real_seen = models.PositiveIntegerField(default=0)
    n_real_correct = models.PositiveIntegerField(default=0)
    n_bogus_seen = models.PositiveIntegerField(default=0)
    n_bogus_correct = models.PositiveIntegerField(default=0)
    n_classifications = models.PositiveIntegerField(default=0)
    contributes = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "volunteer"], name="one_skill_per_run")
        ]

    def __str__(self):
        return f"{self.volunteer_id}: {self.p_real:.2f}/{self.p_bogus:.2f} (run {self.run_id})"


class LabelSet(models.Model):
    """An immutable, numbered export of one run's labels: the ML team's training data.

    A row exists only for an export that finished: its artifact folder and archive are
    complete and their checksums are in the manifest.
    """

    class Scenario(models.TextChoices):
        STABLE = "stable", "stable: the label held for the last stability-window votes"
        UNSTABLE = "unstable", "unstable: the final Pr(Real) against the thresholds"

    number = models.PositiveIntegerField(unique=True, help_text="1, 2, 3, ... in export order")
    run = models.ForeignKey(AggregationRun, on_delete=models.PROTECT, related_name="label_sets")
    scenario = models.CharField(max_length=10, choices=Scenario.choices)
    options = models.JSONField(
        help_text="balance, split, seed, stratify, mix_injections, min_snr as requested"
    )
    manifest = models.JSONField(help_text="manifest.json as written into the artifact")
    path = models.CharField(max_length=300, help_text="the artifact folder, under LABEL_SETS_ROOT")
    archive_sha256 = models.CharField(max_length=64, help_text="of the downloadable archive")
    archive_size = models.BigIntegerField(help_text="bytes")
    n_subjects = models.PositiveIntegerField()
    fine_tune_from = models.CharField(
        max_length=100, blank=True,
        help_text="the model version to fine-tune from once the export commits, if requested",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]

    def __str__(self):
        return f"label set {self.number} ({self.scenario}, run {self.run_id})"


class LabelSetExport(models.Model):
    """A request to export a label set, run on the `aggregation` queue.

    Done means its LabelSet exists: the job is marked done in the transaction that creates
    the LabelSet, so a job run twice never makes two.
    """

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(
        AggregationRun, on_delete=models.CASCADE, related_name="label_set_exports"
    )
    options = models.JSONField(help_text="the ExportOptions, as LabelSet.options holds them")
    fine_tune_from = models.CharField(
        max_length=100, blank=True, help_text="passed on to the label set"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    label_set = models.OneToOneField(
        LabelSet, null=True, blank=True, on_delete=models.PROTECT, related_name="export_job"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pk"]

    def __str__(self):
        return f"label-set export {self.pk} of run {self.run_id}: {self.status}"
