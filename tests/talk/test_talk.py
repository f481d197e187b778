"""Talk: a subject's thread (read by anyone, written with an account, experts marked, escaped,
rate-limited, moderated by staff) and bad-image reports that reach the experts' queue."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.cache import cache
from django.test import Client
from hypothesis import given
from hypothesis import strategies as st

from review import queues
from review import selectors as review_selectors
from talk.models import BadImageReport, Comment
from tests.conftest import add_subjects

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


def client_of(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def post_comment(client, subject_id, body):
    return client.post(f"/talk/subjects/{subject_id}/comments/", {"body": body})


def test_anyone_reads_a_thread_and_experts_are_marked(workflow, make_user):
    subject = add_subjects(workflow, 1)[0]
    post_comment(client_of(make_user("ann")), subject, "Looks like a dipole to me.")
    post_comment(client_of(make_user("eve", team="rubin")), subject, "Agreed: misaligned.")
    page = Client().get(f"/talk/subjects/{subject}/").content.decode()
    assert "Looks like a dipole to me." in page
    assert '<strong>eve</strong> <span class="expert-badge">expert</span>' in page
    assert '<strong>ann</strong> <span class="expert-badge">' not in page
    assert "Sign in</a> or" in page  # an anonymous reader is invited to sign in to write


def test_writing_needs_an_account_and_a_body(workflow, make_user):
    subject = add_subjects(workflow, 1)[0]
    url = f"/talk/subjects/{subject}/comments/"
    assert Client().post(url, {"body": "hi"})["Location"] == f"/accounts/login/?next={url}"
    empty = post_comment(client_of(make_user("ann")), subject, "   ")
    assert empty.status_code == 400
    assert "the comment is empty" in empty.content.decode()
    assert post_comment(client_of(make_user("bob")), 999999, "hi").status_code == 404
    assert not Comment.objects.exists()


def test_comments_are_shown_escaped(workflow, make_user):
    subject = add_subjects(workflow, 1)[0]
    post_comment(client_of(make_user("ann")), subject, '<script>alert("x")</script>')
    page = Client().get(f"/talk/subjects/{subject}/").content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_posting_is_rate_limited_per_person(workflow, make_user, settings):
    settings.TALK_POSTS_PER_WINDOW = 2
    subject = add_subjects(workflow, 1)[0]
    ann = client_of(make_user("ann"))
    assert post_comment(ann, subject, "one").status_code == 302
    assert post_comment(ann, subject, "two").status_code == 302
    refused = post_comment(ann, subject, "three")
    assert refused.status_code == 429
    assert "please wait about" in refused.content.decode()
    assert Comment.objects.count() == 2
    # Someone else is not held back by ann's posts.
    assert post_comment(client_of(make_user("bob")), subject, "mine").status_code == 302


def test_staff_hide_a_comment_and_only_staff_may(workflow, make_user):
    subject = add_subjects(workflow, 1)[0]
    post_comment(client_of(make_user("ann")), subject, "spam spam spam")
    comment = Comment.objects.get()
    url = f"/talk/comments/{comment.pk}/moderate/"
    assert client_of(make_user("bob")).post(url, {"hidden": "1"}).status_code == 403
    staff = client_of(make_user("boss", staff=True))
    assert staff.post(url, {"hidden": "1"}).status_code == 302
    assert "spam spam spam" not in Client().get(f"/talk/subjects/{subject}/").content.decode()
    assert "hidden by staff" in staff.get(f"/talk/subjects/{subject}/").content.decode()
    staff.post(url, {"hidden": "0"})
    assert "spam spam spam" in Client().get(f"/talk/subjects/{subject}/").content.decode()


def test_the_admin_hides_comments_in_bulk(workflow, make_user, django_user_model):
    subject = add_subjects(workflow, 1)[0]
    for body in ("a", "b"):
        post_comment(client_of(make_user(f"user-{body}")), subject, body)
    admin = client_of(django_user_model.objects.create_superuser("root", password="pw-1234!x"))
    admin.post("/admin/talk/comment/", {
        "action": "hide", "_selected_action": list(Comment.objects.values_list("pk", flat=True)),
    })
    assert set(Comment.objects.values_list("hidden", flat=True)) == {True}


def reported_queue(workflow) -> list[int]:
    page = review_selectors.review_queue(workflow=workflow, name=queues.REPORTED, run=None)
    return [row["id"] for row in page.subjects]


def test_a_bad_image_report_puts_the_subject_in_the_reported_queue(workflow, make_user):
    fine, broken, very_broken = add_subjects(workflow, 3)
    browser = Client()
    first = browser.post(f"/talk/subjects/{broken}/report/", HTTP_ACCEPT="application/json")
    assert first.status_code == 201
    again = browser.post(f"/talk/subjects/{broken}/report/", HTTP_ACCEPT="application/json")
    assert again.status_code == 200  # one open report per browser and subject
    assert BadImageReport.objects.filter(subject_id=broken).count() == 1
    for name in ("ann", "bob"):
        client_of(make_user(name)).post(f"/talk/subjects/{very_broken}/report/",
                                        {"note": "a black stamp"})
    assert reported_queue(workflow) == [very_broken, broken]
    BadImageReport.objects.filter(subject_id=very_broken).update(resolved=True)
    assert reported_queue(workflow) == [broken]
    assert fine not in reported_queue(workflow)


def test_a_report_on_an_unknown_subject_is_refused_with_a_reason():
    response = Client().post("/talk/subjects/999999/report/", HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    assert response.json()["detail"] == "no subject 999999"
    assert not BadImageReport.objects.exists()


@given(st.lists(st.integers(0, 5), min_size=1, max_size=30))
def test_the_reported_queue_puts_more_reports_first_and_leaves_unreported_out(reports):
    n = len(reports)
    ids = np.arange(1, n + 1, dtype=np.int64)
    zeros = np.zeros(n, dtype=np.int64)
    candidates = queues.Candidates(
        subject_id=ids, n_real=zeros, n_bogus=zeros, n_volunteers=zeros,
        p_real=np.full(n, np.nan), reliability=np.full(n, np.nan),
        labelled=np.zeros(n, dtype=bool), n_reports=np.array(reports, dtype=np.int64),
    )
    order = queues.queue_order(queues.REPORTED, candidates)
    shown = [reports[i] for i in order]
    assert sorted(ids[order].tolist()) == [int(i) for i, r in zip(ids, reports, strict=True) if r]
    assert shown == sorted(shown, reverse=True)
