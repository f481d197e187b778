"""Sign-up, password reset, the volunteer's own page and deleting an account."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from accounts.services import DELETED_ACCOUNT_NAME
from labeling import services as labeling_services
from labeling.models import Classification, ReferenceLabel, Volunteer
from tests.conftest import add_subjects, classify

pytestmark = pytest.mark.django_db
PASSWORD = "pw-12345!x"


def test_sign_up_sends_a_verification_mail_and_signs_in(workflow, subject_ids,
                                                        django_user_model):
    client = Client()
    client.get(f"/api/workflows/{workflow.pk}/queue/?n=5")
    assert classify(client, workflow.pk, subject_ids[0]).status_code == 201
    response = client.post("/accounts/signup/", {
        "username": "newbie", "email": "newbie@example.org",
        "password1": "a-long-pass-phrase-9", "password2": "a-long-pass-phrase-9",
    })
    assert response.status_code == 302
    user = django_user_model.objects.get(username="newbie")
    # Signed in at once, with the answer given before signing up.
    assert Classification.objects.get(subject_id=subject_ids[0]).volunteer.user == user
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["newbie@example.org"]
    confirm = re.search(r"http://testserver(/accounts/confirm-email/\S+/)", mail.outbox[0].body)
    client.post(confirm.group(1))
    assert user.emailaddress_set.get().verified


def test_a_password_reset_mails_a_link_that_sets_a_new_password(django_user_model):
    django_user_model.objects.create_user("member", email="m@example.org", password=PASSWORD)
    client = Client()
    assert client.post("/accounts/password/reset/", {"email": "m@example.org"}).status_code == 302
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+/)", mail.outbox[0].body)
    form = client.get(link.group(1), follow=True)
    client.post(form.redirect_chain[-1][0], {"password1": "another-pass-phrase-7",
                                             "password2": "another-pass-phrase-7"})
    signed_in = Client().post("/accounts/login/", {"login": "member",
                                                   "password": "another-pass-phrase-7"})
    assert signed_in.status_code == 302


def test_the_sign_in_page_links_sign_up_and_password_reset():
    page = Client().get("/accounts/login/").content.decode()
    assert 'href="/accounts/signup/' in page
    assert 'href="/accounts/password/reset/"' in page


def test_the_volunteer_page_needs_an_account():
    response = Client().get("/accounts/me/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/me/"


def test_the_volunteer_page_shows_the_count_recent_subjects_and_gold_feedback(
        workflow, django_user_model):
    workflow.feedback_enabled = True
    workflow.save(update_fields=["feedback_enabled"])
    science, gold = add_subjects(workflow, 2)
    team = labeling_services.expert_team_get_or_create("rubin")
    reference = labeling_services.reference_set_get_or_create(name="rubin", team=team)
    ReferenceLabel.objects.create(reference_set=reference, subject_id=gold, label="bogus",
                                  explanation="a dipole: the images are misaligned")
    user = django_user_model.objects.create_user("member", password=PASSWORD)
    client = Client()
    client.force_login(user)
    client.get(f"/api/workflows/{workflow.pk}/queue/?n=5")
    classify(client, workflow.pk, science, "real")
    classify(client, workflow.pk, gold, "real")
    page = client.get("/accounts/me/").content.decode()
    assert "You have given <strong>2</strong> answers" in page
    assert f"<td>{science}</td><td>wf</td><td>real</td>" in page
    assert ("real (differs)</td>\n      <td>bogus</td>"
            "<td>a dipole: the images are misaligned") in page


def test_deleting_an_account_keeps_its_answers_anonymised(workflow, subject_ids,
                                                          django_user_model):
    user = django_user_model.objects.create_user("member", password=PASSWORD)
    client = Client()
    client.force_login(user)
    client.get(f"/api/workflows/{workflow.pk}/queue/?n=5")
    classify(client, workflow.pk, subject_ids[0])
    refused = client.post("/accounts/me/delete/", {})
    assert refused.status_code == 400
    assert django_user_model.objects.filter(pk=user.pk).exists()
    assert client.post("/accounts/me/delete/", {"confirm": "yes"}).status_code == 302
    assert not django_user_model.objects.filter(pk=user.pk).exists()
    answer = Classification.objects.get(subject_id=subject_ids[0])
    assert answer.counted
    volunteer = Volunteer.objects.get(pk=answer.volunteer_id)
    assert volunteer.user is None
    assert volunteer.external_name == DELETED_ACCOUNT_NAME.format(pk=volunteer.pk)
    assert client.get("/accounts/me/").status_code == 302  # signed out
