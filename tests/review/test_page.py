"""The review page: who may open it, and what it is made of."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def config_of(response) -> dict:
    html = response.content.decode()
    start = html.index('id="review-config" type="application/json">') + len(
        'id="review-config" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


def test_anonymous_visitors_are_sent_to_sign_in(review):
    response = Client().get("/review/wf/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/review/wf/"


@pytest.mark.parametrize("who", ["volunteer", "ml"])
def test_volunteers_and_the_ml_team_are_refused(review, make_user, who):
    user = make_user(who, ml=who == "ml")
    assert client_for(user).get("/review/wf/").status_code == 403


def test_an_expert_gets_the_shared_stamp_viewer_and_the_labelling_keys(review, expert):
    response = client_for(expert).get("/review/wf/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('class="stamp"') == 3
    assert "frontend/stamps.js" in html
    assert "review/review.js" in html
    for keys in ('aria-keyshortcuts="R"', 'aria-keyshortcuts="B"', 'aria-keyshortcuts="U"',
                 'aria-keyshortcuts="N ArrowRight"', 'aria-keyshortcuts="P ArrowLeft"'):
        assert keys in html
    config = config_of(response)
    # Only the expert's own team's sets are offered for writing.
    assert [s["name"] for s in config["sets"]] == ["rubin"]
    assert config["urls"]["labels"] == "/api/reference-sets/0/labels/"
    assert response.cookies["csrftoken"]


def test_the_classify_page_uses_the_same_viewer(review):
    html = Client().get("/classify/wf/").content.decode()
    assert html.count('class="stamp"') == 3
    assert "frontend/stamps.js" in html


def test_the_queue_form_keeps_what_was_chosen(review, make_user):
    user = make_user("both", team="rubin")
    user.groups.add(review.oxford.team.group)
    html = client_for(user).get(
        f"/review/wf/?queue=random&set={review.oxford.pk}&seed=42").content.decode()
    assert '<option value="random" selected>' in html
    assert f'<option value="{review.oxford.pk}" selected>' in html
    assert 'value="42"' in html


def test_staff_outside_every_team_may_look_but_not_write(review, make_user):
    html = client_for(make_user("boss", staff=True)).get("/review/wf/").content.decode()
    assert "Read-only: you are in no expert team" in html


def test_an_unknown_workflow_is_404(review, expert):
    assert client_for(expert).get("/review/nope/").status_code == 404
