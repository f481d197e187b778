"""Reads of the model registry: versions, their lineage and evaluations, jobs, scores."""

from __future__ import annotations

import re

from django.db.models import F, Prefetch, QuerySet

from labeling.errors import InvalidInput, NotFound
from labeling.models import SubjectSet
from training.models import (
    Evaluation,
    JobStatus,
    ModelVersion,
    ScoringJob,
    SubjectScore,
    TrainingJob,
)

# Versions are numbered v0.1, v0.2, ... unless a name is given: DMTN-337's scheme.
AUTO_NAME_PREFIX = "v0."
_AUTO_NAME = re.compile(rf"^{re.escape(AUTO_NAME_PREFIX)}(\d+)$")


def versions_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("parent", "label_set", "created_by")


def versions_with_own_evaluation() -> QuerySet[ModelVersion]:
    """Versions, each with `own_evaluations`: its evaluation on its own label set (a list of
    at most one), fetched for all of them in one query."""
    own = Evaluation.objects.filter(label_set_id=F("model_version__label_set_id"))
    return versions_list().prefetch_related(
        Prefetch("evaluations", queryset=own, to_attr="own_evaluations"))


def version_with_own_evaluation(name: str) -> ModelVersion:
    try:
        return versions_with_own_evaluation().get(name=name)
    except ModelVersion.DoesNotExist:
        raise NotFound(f"no model version {name!r}") from None


def version_names(limit: int) -> list[str]:
    return list(ModelVersion.objects.order_by("-pk").values_list("name", flat=True)[:limit])


def version_get(name: str) -> ModelVersion:
    try:
        return versions_list().get(name=name)
    except ModelVersion.DoesNotExist:
        raise NotFound(f"no model version {name!r}") from None


def lineage(version: ModelVersion) -> list[ModelVersion]:
    """The version and its ancestors, the base model last."""
    chain = [version]
    while chain[-1].parent_id is not None:
        chain.append(versions_list().get(pk=chain[-1].parent_id))
    return chain


def next_version_name() -> str:
    """v0.N with N one more than any v0.N registered or claimed by a live job."""
    taken = list(ModelVersion.objects.values_list("name", flat=True))
    taken += TrainingJob.objects.exclude(status=JobStatus.FAILED).values_list("name", flat=True)
    numbers = [int(match.group(1)) for name in taken if (match := _AUTO_NAME.match(name))]
    return f"{AUTO_NAME_PREFIX}{max(numbers, default=0) + 1}"


def evaluation_find(version: ModelVersion, label_set_id: int) -> Evaluation | None:
    return version.evaluations.filter(label_set_id=label_set_id).first()


def training_jobs_list() -> QuerySet[TrainingJob]:
    return TrainingJob.objects.select_related("label_set", "parent", "model_version",
                                              "created_by")


def training_job_get(job_id: int) -> TrainingJob:
    try:
        return training_jobs_list().get(pk=job_id)
    except TrainingJob.DoesNotExist:
        raise NotFound(f"no training job {job_id}") from None


def training_jobs_not_done() -> QuerySet[TrainingJob]:
    """Jobs waiting, running or failed (with their error), newest first."""
    return training_jobs_list().exclude(status=JobStatus.DONE)


def scoring_jobs_list() -> QuerySet[ScoringJob]:
    return ScoringJob.objects.select_related("model_version", "subject_set__project",
                                             "created_by")


def scoring_jobs_of(version: ModelVersion) -> QuerySet[ScoringJob]:
    return scoring_jobs_list().filter(model_version=version)


def scoring_job_get(job_id: int) -> ScoringJob:
    try:
        return scoring_jobs_list().get(pk=job_id)
    except ScoringJob.DoesNotExist:
        raise NotFound(f"no scoring job {job_id}") from None


def subject_set_find(name: str, project: str | None = None) -> SubjectSet:
    """A subject set by name, within `project` (its name) when several projects use the name."""
    sets = SubjectSet.objects.filter(name=name).select_related("project")
    if project is not None:
        sets = sets.filter(project__name=project)
    found = list(sets[:2])
    if not found:
        where = f" in project {project!r}" if project is not None else ""
        raise NotFound(f"no subject set {name!r}{where}")
    if len(found) > 1:
        raise InvalidInput(f"several projects have a subject set {name!r}: name the project")
    return found[0]


def scores_count(version: ModelVersion, subject_set: SubjectSet) -> int:
    """Subjects of the set (with stamps) that the version has scored."""
    return SubjectScore.objects.filter(model_version=version, subject__subject_set=subject_set
                                       ).exclude(subject__stamps="").count()


def scores_of(version: ModelVersion, subject_set: SubjectSet | None = None):
    """(subject id, external id, origin, reliability) rows, by subject id, streamed."""
    scores = SubjectScore.objects.filter(model_version=version)
    if subject_set is not None:
        scores = scores.filter(subject__subject_set=subject_set)
    return scores.order_by("subject_id").values_list(
        "subject_id", "subject__external_id", "subject__origin", "reliability"
    ).iterator(chunk_size=2000)
