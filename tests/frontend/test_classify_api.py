"""What the classify page needs from the API: pixel values, tutorial examples, reference
feedback, workflow progress; and the page itself."""

from __future__ import annotations

import dataclasses
import json
import uuid

import numpy as np
import pytest
from django.test import Client
from rest_framework.test import APIClient

from labeling import selectors, services
from labeling.models import ReferenceLabel, Workflow
from labeling.pixel_payload import decode_stamp
from tests.conftest import add_subjects, classify, make_record

pytestmark = pytest.mark.django_db


def reference(workflow, subject_ids, labels):
    """Label subjects in a reference set: labels are (label, explanation) pairs."""
    team = services.expert_team_get_or_create("experts")
    reference_set = services.reference_set_get_or_create(name="gold", team=team)
    return [
        ReferenceLabel.objects.create(reference_set=reference_set, subject_id=subject_id,
                                      label=label, explanation=explanation)
        for subject_id, (label, explanation) in zip(subject_ids, labels, strict=True)
    ]


def test_the_classify_page_carries_its_configuration_and_a_csrf_cookie(workflow, subject_ids):
    client = Client()
    page = client.get(f"/classify/{workflow.slug}/")
    assert page.status_code == 200
    assert "csrftoken" in page.cookies
    html = page.content.decode()
    config = json.loads(html.split('id="classify-config" type="application/json">')[1]
                        .split("</script>")[0])
    assert config["workflow"]["id"] == workflow.pk
    assert config["urls"]["queue"] == f"/api/workflows/{workflow.pk}/queue/"
    for label in ("Template", "Science", "Difference", "Real", "Bogus", "Field guide"):
        assert label in html
    assert client.get("/classify/nope/").status_code == 404
    assert f'href="/classify/{workflow.slug}/"' in client.get("/").content.decode()


def test_pixel_values_are_the_stored_float32_stamps_with_nan_kept(workflow):
    record = make_record("nan-1", np.random.default_rng(3))
    record.template[0, :] = np.nan
    subject_set = services.subject_set_attach(workflow=workflow, name="nan")
    subject_id = services.subjects_ingest([record], subject_set=subject_set).subject_ids[0]
    response = APIClient().get(f"/api/subjects/{subject_id}/pixels/")
    assert response.status_code == 200
    payload = response.json()
    assert payload["encoding"] == "float32-le-base64"
    assert payload["unit"] is None  # a record with no survey metadata: no unit claimed
    assert set(payload["stamps"]) == {"template", "science", "difference"}
    # Picture order: the top row first, so FITS row 0 (all NaN here) comes last.
    assert np.isnan(decode_stamp(payload, "template")[-1]).all()
    assert not np.isnan(decode_stamp(payload, "template")[:-1]).any()
    for kind, stamp in zip(("template", "science", "difference"), record.stamps(), strict=True):
        assert payload["shape"][kind] == [51, 51]
        assert payload["centre"][kind] == [25, 25]
        np.testing.assert_array_equal(decode_stamp(payload, kind), stamp[::-1].astype(np.float32))
        low, high = payload["zscale"][kind]
        assert np.nanmin(stamp) <= low < high <= np.nanmax(stamp)
    again = APIClient().get(f"/api/subjects/{subject_id}/pixels/",
                            HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert APIClient().get("/api/subjects/999999/pixels/").status_code == 404


def test_rubin_pixel_values_carry_their_unit(workflow):
    record = dataclasses.replace(make_record("rubin-1", np.random.default_rng(4)),
                                 metadata={"diaObjectId": 170, "midpointMjdTai": 60600.5})
    subject_set = services.subject_set_attach(workflow=workflow, name="rubin")
    subject_id = services.subjects_ingest([record], subject_set=subject_set).subject_ids[0]
    assert APIClient().get(f"/api/subjects/{subject_id}/pixels/").json()["unit"] == "nJy"


def test_tutorial_examples_are_the_first_explained_labels_and_never_served(workflow):
    ids = add_subjects(workflow, 10)
    labels = reference(workflow, ids[:7], [
        ("real", "a supernova"), ("bogus", ""), ("bogus", "a dipole"), ("real", "an asteroid"),
        ("real", "a variable star"), ("bogus", "a cosmic ray"), ("bogus", "a bad column"),
    ])
    tutorial = APIClient().get(f"/api/workflows/{workflow.pk}/tutorial/").json()["examples"]
    assert [(e["subject"], e["label"], e["explanation"]) for e in tutorial] == [
        (ids[0], "real", "a supernova"), (ids[3], "real", "an asteroid"),
        (ids[2], "bogus", "a dipole"), (ids[5], "bogus", "a cosmic ray"),
    ]
    assert set(tutorial[0]["images"]) == {"template", "science", "difference"}

    Workflow.objects.filter(pk=workflow.pk).update(gold_schedule=[[None, 1.0]])
    workflow.refresh_from_db()
    served = set()
    for _ in range(5):
        queue = selectors.subject_queue(volunteer=services.volunteer_for_external_name("v"),
                                        workflow=workflow, n=10)
        served |= set(queue.subject_ids)
    examples = {e["subject"] for e in tutorial}
    assert not served & examples
    # The other reference subjects, explained or not, remain gold.
    assert {label.subject_id for label in labels} - examples <= served


def test_feedback_follows_an_answer_on_a_reference_subject_when_enabled(workflow):
    ids = add_subjects(workflow, 4)
    reference(workflow, ids[:1], [("bogus", "a dipole from misalignment")])
    client = APIClient()
    client.get(f"/api/workflows/{workflow.pk}/queue/")
    first = classify(client, workflow.pk, ids[0], "real")
    assert first.status_code == 201
    assert first.json()["feedback"] is None  # the workflow does not show feedback

    Workflow.objects.filter(pk=workflow.pk).update(feedback_enabled=True)
    client_id = uuid.uuid4()
    reply = classify(client, workflow.pk, ids[1], "real", client_id=client_id)
    assert reply.json()["feedback"] is None  # not a reference subject
    other = APIClient()
    other.get(f"/api/workflows/{workflow.pk}/queue/")
    client_id = uuid.uuid4()
    answered = classify(other, workflow.pk, ids[0], "real", client_id=client_id)
    expected = {"label": "bogus", "explanation": "a dipole from misalignment"}
    assert answered.json()["feedback"] == expected
    replay = classify(other, workflow.pk, ids[0], "real", client_id=client_id)
    assert replay.status_code == 200
    assert replay.json()["feedback"] == expected


def test_progress_tells_a_finished_workflow_from_a_volunteer_who_has_seen_everything(
    workflow, subject_ids
):
    client = APIClient()
    assert client.get(f"/api/workflows/{workflow.pk}/progress/").json() == {
        "active": True, "finished": False}
    for subject_id in subject_ids:
        for name in ("a", "b"):
            services.classification_create(
                volunteer=services.volunteer_for_external_name(name), workflow_id=workflow.pk,
                subject_id=subject_id, answer="real", client_id=uuid.uuid4())
    assert client.get(f"/api/workflows/{workflow.pk}/progress/").json()["finished"] is True
    Workflow.objects.filter(pk=workflow.pk).update(active=False)
    assert client.get(f"/api/workflows/{workflow.pk}/progress/").json() == {
        "active": False, "finished": True}
