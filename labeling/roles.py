"""Who may do what. Experts are members of an ExpertTeam's group; the ML team is a group."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

ML_TEAM_GROUP = "ml-team"


def is_expert(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and user.groups.filter(expert_team__isnull=False).exists()


def expert_team_names(user: AbstractBaseUser | AnonymousUser) -> set[str]:
    if not user.is_authenticated:
        return set()
    return set(user.groups.filter(expert_team__isnull=False).values_list("expert_team__name",
                                                                          flat=True))


def is_ml_team(user: AbstractBaseUser | AnonymousUser) -> bool:
    return user.is_authenticated and user.groups.filter(name=ML_TEAM_GROUP).exists()


def can_see_subject_truth(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Origin, scores and metadata: staff, experts and the ML team, never volunteers."""
    return user.is_authenticated and (user.is_staff or is_expert(user) or is_ml_team(user))


def can_use_label_sets(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Label sets carry reference labels and origins: the ML team and staff only."""
    return user.is_authenticated and (user.is_staff or is_ml_team(user))


def can_read_reference_labels(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Reference labels reach the ML team only through a label-set export."""
    return user.is_authenticated and (user.is_staff or is_expert(user))


def can_read_aggregation_runs(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Runs show reference labels next to the crowd's answers: staff and experts only."""
    return user.is_authenticated and (user.is_staff or is_expert(user))
