"""Projects, workflows, subjects, classifications, volunteers and expert reference labels.

Models hold data and constraints only; every write goes through `labeling.services`.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from labeling import rules
from labeling.records import (
    ANSWERS,
    BAND_MAX_LENGTH,
    COUNTED_REFERENCE_LABELS,
    EXPLANATION_MAX_LENGTH,
    EXTERNAL_ID_MAX_LENGTH,
    FIT_PAD,
    ORIGIN_MAX_LENGTH,
    REFERENCE_LABELS,
)

ANSWER_CHOICES = [(answer, answer.capitalize()) for answer in ANSWERS]
REFERENCE_LABEL_CHOICES = [(label, label.capitalize()) for label in REFERENCE_LABELS]
DEFAULT_QUESTION = "Is the object at the centre of the difference image Real or Bogus?"


def no_centre_offset():
    return [0, 0]


def default_gold_schedule():
    return [list(step) for step in rules.DEFAULT_GOLD_SCHEDULE]


def validate_gold_schedule(value):
    try:
        rules.validate_gold_schedule(value)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"invalid gold schedule: {exc}") from exc


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class SubjectSet(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="subject_sets")
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="subject_set_name_per_project")
        ]

    def __str__(self):
        return f"{self.project} / {self.name}"


class Workflow(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="workflows")
    slug = models.SlugField(max_length=100, unique=True)
    question = models.CharField(max_length=500, default=DEFAULT_QUESTION)
    retire_agree = models.PositiveSmallIntegerField(default=rules.DEFAULT_RETIRE_AGREE)
    retire_max = models.PositiveSmallIntegerField(default=rules.DEFAULT_RETIRE_MAX)
    gold_schedule = models.JSONField(
        default=default_gold_schedule,
        validators=[validate_gold_schedule],
        help_text="[[upto, rate], ..., [null, rate]]: reference-subject injection rate by the "
        "number of classifications the volunteer has made in this workflow.",
    )
    active = models.BooleanField(default=True)
    feedback_enabled = models.BooleanField(
        default=False,
        help_text="after a volunteer answers a reference subject, show the experts' label",
    )
    subject_sets = models.ManyToManyField(SubjectSet, related_name="workflows", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(retire_agree__gte=1), name="workflow_retire_agree_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(retire_max__gte=models.F("retire_agree")),
                name="workflow_retire_max_not_below_agree",
            ),
        ]

    def __str__(self):
        return self.slug

    @property
    def answers(self) -> tuple[str, ...]:
        return ANSWERS

    @property
    def retirement_rule(self) -> rules.RetirementRule:
        return rules.RetirementRule(agree=self.retire_agree, maximum=self.retire_max)


def stamp_upload_path(subject: Subject, filename: str) -> str:
    # Two characters of fan-out keep directories small at hundreds of thousands of subjects.
    return f"stamps/{subject.project_id}/{filename[:2]}/{filename}"


class Subject(models.Model):
    """One DIA detection: its stamps (float32, lossless .npy, NaN kept) and its metadata."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="subjects")
    subject_set = models.ForeignKey(SubjectSet, on_delete=models.CASCADE, related_name="subjects")
    external_id = models.CharField(max_length=EXTERNAL_ID_MAX_LENGTH,
                                   help_text="e.g. the diaSourceId or ZTF candid")
    origin = models.CharField(max_length=ORIGIN_MAX_LENGTH, blank=True, db_index=True)
    snr = models.FloatField(null=True, blank=True)
    psf_flux = models.FloatField(null=True, blank=True)
    psf_flux_err = models.FloatField(null=True, blank=True)
    ra = models.FloatField(null=True, blank=True)
    dec = models.FloatField(null=True, blank=True)
    band = models.CharField(max_length=BAND_MAX_LENGTH, blank=True)
    reliability = models.FloatField(null=True, blank=True, help_text="model score, if known")
    metadata = models.JSONField(default=dict, blank=True)
    # Empty for subjects known only by id (a Zooniverse import): they are aggregated, never served.
    stamps = models.FileField(upload_to=stamp_upload_path, max_length=300, blank=True)
    stamp_size = models.PositiveSmallIntegerField()
    original_shapes = models.JSONField(help_text="[[h, w], ...] of template, science, difference")
    # db_default as well: the benchmarks' seeder copies rows straight into the table.
    stamp_fit = models.CharField(
        max_length=8, default=FIT_PAD, db_default=FIT_PAD,
        help_text="how stamps smaller than the cube were fitted into it: pad or resample",
    )
    centre_offset = models.JSONField(
        default=no_centre_offset, db_default=no_centre_offset(),
        help_text="[rows, columns] from each stamp's index n // 2 to its detection pixel, "
                  "which the stored cube puts on its centre (non-zero for edge-clipped cutouts)",
    )
    source = models.CharField(max_length=500, blank=True, help_text="the input it came from")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "external_id"], name="subject_external_id_per_project"
            )
        ]

    def __str__(self):
        return self.external_id


class SubjectWorkflowStatus(models.Model):
    """A subject's retirement state in one workflow, locked row-wise while a vote counts."""

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="statuses")
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="statuses")
    n_counted = models.PositiveIntegerField(default=0)
    first_answer = models.CharField(max_length=10, blank=True, choices=ANSWER_CHOICES)
    unanimous = models.BooleanField(default=True)
    retired = models.BooleanField(default=False)
    retired_at = models.DateTimeField(null=True, blank=True)
    priority = models.FloatField(default=0.0, help_text="higher is served first")
    # A uniform random key, fixed at creation, lets selection draw random subjects with an
    # index range scan instead of ORDER BY random() over the whole table.
    random_key = models.FloatField()

    class Meta:
        verbose_name_plural = "subject workflow statuses"
        constraints = [
            models.UniqueConstraint(fields=["workflow", "subject"], name="status_per_workflow")
        ]
        indexes = [
            # Partial, and without `retired` among its fields: the queue then reads unretired
            # rows in (priority, random_key) order straight from the index, where SQLite
            # otherwise scanned every status row or sorted the matches in a temporary B-tree.
            models.Index(
                fields=["workflow", "-priority", "random_key"], name="status_queue",
                condition=models.Q(retired=False),
            )
        ]

    def __str__(self):
        return f"{self.subject_id} in {self.workflow_id}"

    @property
    def retirement_state(self) -> rules.RetirementState:
        return rules.RetirementState(self.n_counted, self.first_answer, self.unanimous)


class Volunteer(models.Model):
    """Who classified: a signed-in user, or an anonymous browser session."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE
    )
    session_key = models.CharField(max_length=64, null=True, blank=True, unique=True)
    external_name = models.CharField(
        max_length=200, null=True, blank=True, unique=True,
        help_text="identity from another platform (e.g. a Zooniverse user name) or a simulator",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False)
                | models.Q(session_key__isnull=False)
                | models.Q(external_name__isnull=False),
                name="volunteer_has_identity",
            )
        ]

    def __str__(self):
        if self.user_id:
            return f"user:{self.user_id}"
        if self.external_name:
            return self.external_name
        return f"anonymous:{self.pk}"


class NotCounted(models.TextChoices):
    """Why an answer did not count toward retirement; the values are `labeling.rules`'."""

    COUNTED = rules.COUNTED, "counted"
    REPEAT = rules.REPEAT, "the volunteer had already classified this subject"
    RETIRED = rules.RETIRED, "the subject had already retired"
    EXPERT_ON_REFERENCE = rules.EXPERT_ON_REFERENCE, "an expert classified a reference subject"
    WORKFLOW_INACTIVE = rules.WORKFLOW_INACTIVE, "the workflow was not active"
    PROBATION = rules.PROBATION, "one of an anonymous volunteer's first answers in the workflow"


class Classification(models.Model):
    client_id = models.UUIDField(unique=True, default=uuid.uuid4)
    volunteer = models.ForeignKey(
        Volunteer, on_delete=models.PROTECT, related_name="classifications"
    )
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="classifications")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="classifications")
    answer = models.CharField(max_length=10, choices=ANSWER_CHOICES)
    # Aggregation replays classifications in this order; an import sets it to the original time.
    created_at = models.DateTimeField(default=timezone.now, help_text="when the server stored it")
    answered_at = models.DateTimeField(null=True, blank=True, help_text="when the client says")
    user_agent = models.CharField(max_length=300, blank=True)
    counted = models.BooleanField()
    not_counted_reason = models.CharField(
        max_length=30, choices=NotCounted.choices, default=NotCounted.COUNTED, blank=True
    )
    external_id = models.CharField(
        max_length=100, blank=True, default="",
        help_text="the id on the platform it was imported from, e.g. zooniverse:123456",
    )

    class Meta:
        indexes = [
            models.Index(fields=["volunteer", "subject"], name="classification_seen"),
            models.Index(fields=["workflow", "volunteer"], name="classification_by_volunteer"),
            models.Index(fields=["workflow", "created_at"], name="classification_timeline"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(counted=True, not_counted_reason="")
                | models.Q(counted=False) & ~models.Q(not_counted_reason=""),
                name="classification_reason_iff_not_counted",
            ),
            # Once per workflow: one Zooniverse export may be imported into several workflows.
            models.UniqueConstraint(
                fields=["workflow", "external_id"], condition=~models.Q(external_id=""),
                name="classification_external_id_per_workflow",
            ),
        ]


    def __str__(self):
        return f"{self.answer} on {self.subject_id} by {self.volunteer_id}"


class VolunteerWorkflowCount(models.Model):
    """How many answers a volunteer has stored in a workflow (counted or not): the gold
    schedule's input, kept in the transaction that stores each answer (and recounted by the
    bulk imports), so the queue reads one row instead of counting a volunteer's answers."""

    volunteer = models.ForeignKey(Volunteer, on_delete=models.CASCADE, related_name="+")
    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="+")
    n_classified = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["volunteer", "workflow"],
                                    name="count_per_volunteer_workflow")
        ]

    def __str__(self):
        return f"{self.volunteer_id} in {self.workflow_id}: {self.n_classified}"


class ExpertTeam(models.Model):
    """A named team of experts (`rubin`, `oxford`); membership is its Django group."""

    name = models.SlugField(max_length=100, unique=True)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="expert_team")

    def __str__(self):
        return self.name


class ReferenceSet(models.Model):
    name = models.SlugField(max_length=100, unique=True)
    team = models.ForeignKey(ExpertTeam, on_delete=models.PROTECT, related_name="reference_sets")
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return self.name


class ReferenceLabelQuerySet(models.QuerySet):
    def counted(self) -> ReferenceLabelQuerySet:
        """The labels that are reference truth: Real or Bogus (an Unsure is kept, never truth)."""
        return self.filter(label__in=COUNTED_REFERENCE_LABELS)


class ReferenceLabel(models.Model):
    """A reference set's current label for one subject; its past is in ReferenceLabelChange."""

    reference_set = models.ForeignKey(ReferenceSet, on_delete=models.CASCADE, related_name="labels")
    subject = models.ForeignKey(Subject, on_delete=models.CASCADE, related_name="reference_labels")
    label = models.CharField(
        max_length=10, choices=REFERENCE_LABEL_CHOICES,
        help_text="unsure is kept but never counts as reference truth",
    )
    explanation = models.CharField(
        max_length=EXPLANATION_MAX_LENGTH, blank=True,
        help_text="shown to volunteers as feedback, e.g. 'a dipole from misalignment'",
    )
    expert = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        help_text="who set the current label; empty for imports and the simulator",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(default=timezone.now, help_text="when the label last changed")

    objects = ReferenceLabelQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["reference_set", "subject"], name="one_reference_label_per_set"
            )
        ]

    def __str__(self):
        return f"{self.subject_id}: {self.label} ({self.reference_set_id})"


class ReferenceLabelChange(models.Model):
    """One change of a reference label (its creation included): who, when, old and new.

    Written by the reference-label services in the transaction that changes the label, never
    edited afterwards.
    """

    class Source(models.TextChoices):
        REVIEW = "review", "the expert review page"
        API = "api", "the REST API"
        IMPORT = "import", "a file import"
        SIMULATOR = "simulator", "the simulator"

    reference_set = models.ForeignKey(
        ReferenceSet, on_delete=models.CASCADE, related_name="label_changes"
    )
    subject = models.ForeignKey(
        Subject, on_delete=models.CASCADE, related_name="reference_label_changes"
    )
    expert = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        help_text="empty for imports and the simulator",
    )
    old_label = models.CharField(
        max_length=10, choices=REFERENCE_LABEL_CHOICES, blank=True,
        help_text="empty when the change created the label",
    )
    new_label = models.CharField(max_length=10, choices=REFERENCE_LABEL_CHOICES)
    old_explanation = models.CharField(max_length=EXPLANATION_MAX_LENGTH, blank=True)
    new_explanation = models.CharField(max_length=EXPLANATION_MAX_LENGTH, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["reference_set", "subject", "changed_at"],
                         name="reference_label_history"),
        ]

    def __str__(self):
        return (f"{self.subject_id} in {self.reference_set_id}: "
                f"{self.old_label or '-'} -> {self.new_label}")
