"""Signing in attaches the browser's anonymous answers to the account: nothing lost, nothing
counted twice, also when the account already has answers of its own."""

from __future__ import annotations

import contextlib
import itertools
import uuid

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import merge, services
from labeling import rules
from labeling import services as labeling_services
from labeling.errors import Conflict
from labeling.models import Classification, NotCounted, SubjectWorkflowStatus, Volunteer
from tests.conftest import add_subjects, classify

PASSWORD = "pw-12345!x"


# --- the pure rules --------------------------------------------------------------------------

person_answers = st.lists(st.builds(merge.PersonAnswer, id=st.integers(), counted=st.booleans()),
                          unique_by=lambda a: a.id, max_size=8)


@given(person_answers)
def test_only_the_earliest_counted_answer_keeps_counting(answers):
    uncounted = merge.answers_to_uncount(answers)
    still_counted = [a.id for a in answers if a.counted and a.id not in uncounted]
    counted = [a.id for a in answers if a.counted]
    assert still_counted == counted[:1]
    assert set(uncounted) <= set(counted)


@given(st.lists(st.sampled_from(["real", "bogus"]), max_size=10),
       st.integers(1, 4), st.integers(0, 6))
def test_a_recount_retires_where_counting_one_at_a_time_first_would(answers, agree, extra):
    rule = rules.RetirementRule(agree=agree, maximum=agree + extra)
    result = merge.recount(answers, rule)
    assert result.state.n_counted == len(answers)
    assert result.state.first_answer == (answers[0] if answers else "")
    assert result.state.unanimous == (len(set(answers)) <= 1)
    first_agree = len(answers) >= agree and len(set(answers[:agree])) == 1
    assert result.retired == (first_agree or len(answers) >= rule.maximum)


# --- on sign-in ----------------------------------------------------------------------------


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("member", email="m@example.org",
                                                 password=PASSWORD)


def sign_in(client, username="member", password=PASSWORD):
    return client.post("/accounts/login/", {"login": username, "password": password})


def anonymous_answers(client, workflow, subject_ids, answer="real"):
    client.get(f"/api/workflows/{workflow.pk}/queue/?n=50")
    for subject_id in subject_ids:
        assert classify(client, workflow.pk, subject_id, answer).status_code == 201


def answers_of(user) -> int:
    return Classification.objects.filter(volunteer__user=user).count()


@pytest.mark.django_db
def test_a_first_sign_in_takes_the_anonymous_identity_over(workflow, subject_ids, member):
    client = Client()
    anonymous_answers(client, workflow, subject_ids[:2])
    anonymous = Classification.objects.get(subject_id=subject_ids[0]).volunteer
    assert sign_in(client).status_code == 302
    volunteer = Volunteer.objects.get(user=member)
    assert volunteer.pk == anonymous.pk
    assert volunteer.session_key is None
    # Signed in, the same subject is still theirs: a second answer is a conflict.
    assert classify(client, workflow.pk, subject_ids[0]).status_code == 409


@pytest.mark.django_db
def test_an_account_that_opened_the_classify_page_keeps_its_anonymous_answers(
        workflow, subject_ids, member):
    """The case of issue 18: the account has its own (empty) volunteer identity; three
    anonymous answers used to stay behind, and the count dropped from 3 to 0."""
    Volunteer.objects.create(user=member)
    browser = Client()
    anonymous_answers(browser, workflow, subject_ids[:3])
    sign_in(browser)
    assert answers_of(member) == 3
    assert Volunteer.objects.filter(user__isnull=True, session_key__isnull=False).count() == 0
    assert "3 answer(s) you gave in this browser" in browser.get("/").content.decode()


@pytest.mark.django_db
def test_a_subject_both_identities_answered_counts_once(workflow, member):
    # Never retire here: the subject's count must show exactly what counts.
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save(update_fields=["retire_agree", "retire_max"])
    shared, own, anonymous_only = add_subjects(workflow, 3)
    signed_in = Client()
    sign_in(signed_in)
    signed_in.get(f"/api/workflows/{workflow.pk}/queue/?n=50")
    assert classify(signed_in, workflow.pk, shared, "real").status_code == 201
    assert classify(signed_in, workflow.pk, own).status_code == 201
    browser = Client()
    anonymous_answers(browser, workflow, [shared], answer="bogus")
    anonymous_answers(browser, workflow, [anonymous_only])
    before = Classification.objects.count()

    sign_in(browser)

    assert Classification.objects.count() == before  # nothing lost
    on_shared = Classification.objects.filter(subject_id=shared).order_by("created_at", "pk")
    assert [(c.answer, c.counted, c.not_counted_reason) for c in on_shared] == [
        ("real", True, ""), ("bogus", False, NotCounted.REPEAT)]  # the earlier one counts
    assert {c.volunteer.user_id for c in on_shared} == {member.pk}
    status = SubjectWorkflowStatus.objects.get(workflow=workflow, subject_id=shared)
    assert (status.n_counted, status.first_answer, status.unanimous) == (1, "real", True)
    assert answers_of(member) == 4
    assert Classification.objects.filter(volunteer__user=member, counted=True).count() == 3


@pytest.mark.django_db
def test_a_subject_retired_only_by_the_duplicate_goes_back_to_the_queue(workflow, member):
    subject = add_subjects(workflow, 1)[0]  # the default rule: two agreeing answers retire
    signed_in = Client()
    sign_in(signed_in)
    signed_in.get(f"/api/workflows/{workflow.pk}/queue/?n=5")
    classify(signed_in, workflow.pk, subject, "real")
    browser = Client()
    anonymous_answers(browser, workflow, [subject], answer="real")
    status = SubjectWorkflowStatus.objects.get(workflow=workflow, subject_id=subject)
    assert status.retired

    sign_in(browser)

    status.refresh_from_db()
    assert (status.n_counted, status.retired, status.retired_at) == (1, False, None)


@pytest.mark.django_db
def test_a_failed_sign_in_attaches_nothing(workflow, subject_ids, member):
    client = Client()
    anonymous_answers(client, workflow, subject_ids[:1])
    assert sign_in(client, password="wrong").status_code == 200
    assert answers_of(member) == 0


@pytest.mark.django_db
def test_a_browser_that_never_answered_merges_nothing(member):
    assert services.volunteer_merge_session(user=member, session_key="no-such-session") == \
        services.NOTHING_TO_MERGE
    assert services.volunteer_merge_session(user=member, session_key=None) == \
        services.NOTHING_TO_MERGE
    assert not Volunteer.objects.filter(user=member).exists()


# --- two sign-ins at once, on PostgreSQL's row locks -----------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_sign_ins_at_once_merge_each_answer_once(django_user_model):
    from tests.labeling.test_concurrency import run_at_once

    user = django_user_model.objects.create_user("racer", password=PASSWORD)
    workflow = labeling_services.workflow_create(slug="merge-race", project_name="merge race")
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save(update_fields=["retire_agree", "retire_max"])
    subjects = add_subjects(workflow, 4)
    # The account answered subject 0; two browsers (two anonymous sessions) answered 0 and 1,
    # and 0 and 2; each browser signs in twice at the same moment (a double-clicked button).
    account = Volunteer.objects.create(user=user)
    browsers = [Volunteer.objects.create(session_key=f"browser-{i}") for i in range(2)]
    for volunteer, subject in [(account, 0), (browsers[0], 0), (browsers[0], 1),
                               (browsers[1], 0), (browsers[1], 2)]:
        labeling_services.classification_create(
            volunteer=volunteer, workflow_id=workflow.pk, subject_id=subjects[subject],
            answer="real", client_id=uuid.uuid4())

    results, errors = run_at_once([
        lambda key=key: services.volunteer_merge_session(user=user, session_key=key)
        for key in ["browser-0", "browser-1", "browser-0", "browser-1"]
    ])

    assert errors == []
    assert sum(r.moved for r in results) == 4  # each anonymous answer moved once
    assert Classification.objects.count() == 5
    assert set(Classification.objects.values_list("volunteer_id", flat=True)) == {account.pk}
    assert Classification.objects.filter(subject_id=subjects[0], counted=True).count() == 1
    for index, counted in enumerate([1, 1, 1, 0]):
        status = SubjectWorkflowStatus.objects.get(workflow=workflow, subject_id=subjects[index])
        assert status.n_counted == counted


# --- the merge, on any history -------------------------------------------------------------

_examples = itertools.count()
WHO = ("account", "anonymous", "someone else")


@pytest.mark.django_db
@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(WHO), st.integers(0, 2),
                          st.sampled_from(["real", "bogus"])), max_size=12),
       st.integers(1, 3), st.integers(0, 3))
def test_a_merge_loses_no_answer_and_counts_the_person_once_per_subject(
        django_user_model, history, agree, extra):
    n = next(_examples)
    workflow = labeling_services.workflow_create(slug=f"merge-{n}", project_name=f"merge {n}")
    workflow.retire_agree, workflow.retire_max = agree, agree + extra
    workflow.save(update_fields=["retire_agree", "retire_max"])
    subjects = add_subjects(workflow, 3, seed=n)
    user = django_user_model.objects.create_user(f"person-{n}")
    volunteers = {"account": Volunteer.objects.create(user=user),
                  "anonymous": Volunteer.objects.create(session_key=f"browser-{n}"),
                  "someone else": Volunteer.objects.create(external_name=f"other-{n}")}
    for who, subject, answer in history:
        # The same identity answering a subject twice is refused, as it is live.
        with contextlib.suppress(Conflict):
            labeling_services.classification_create(
                volunteer=volunteers[who], workflow_id=workflow.pk,
                subject_id=subjects[subject], answer=answer, client_id=uuid.uuid4())
    stored = set(Classification.objects.filter(workflow=workflow).values_list("pk", flat=True))

    services.volunteer_merge_session(user=user, session_key=f"browser-{n}")

    answers = Classification.objects.filter(workflow=workflow)
    assert set(answers.values_list("pk", flat=True)) == stored  # nothing lost
    for subject in subjects:
        mine = answers.filter(subject_id=subject, volunteer__user=user).order_by("created_at",
                                                                                "pk")
        counted = [c.pk for c in mine if c.counted]
        assert len(counted) <= 1  # one person, one counted answer
        status = SubjectWorkflowStatus.objects.get(workflow=workflow, subject_id=subject)
        still = answers.filter(subject_id=subject, counted=True).order_by("created_at", "pk")
        assert status.n_counted == still.count()
        recount = merge.recount(still.values_list("answer", flat=True),
                                workflow.retirement_rule)
        assert (status.first_answer, status.unanimous) == (recount.state.first_answer,
                                                           recount.state.unanimous)
