"""The API against its own OpenAPI schema (schemathesis): for every operation, a bounded number
of generated requests, as staff and as a volunteer, gives no server error, and every response
(status code, content type, body) is one the schema documents."""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import add_subjects

# Examples per operation and caller: bounded so the whole run takes seconds, not minutes.
EXAMPLES = 3
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def _schema():
    from config.wsgi import application

    return schemathesis.openapi.from_wsgi("/api/schema/", application)


schema = _schema()


@pytest.fixture
def _requests_keep_the_test_connection():
    """The WSGI app closes the database connection after each request, as a server should;
    the test's transaction lives on that connection (Django's test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def callers(workflow, make_user, _requests_keep_the_test_connection):
    """Authorization headers of a staff member and of a signed-in volunteer, with a workflow
    and subjects for the generated ids to find."""
    from rest_framework.authtoken.models import Token

    subject_ids = add_subjects(workflow, 3)
    _jobs_with_empty_fields(workflow, subject_ids)
    headers = []
    for user in (make_user("staff", staff=True), make_user("volunteer")):
        token, _ = Token.objects.get_or_create(user=user)
        headers.append({"Authorization": f"Token {token.key}"})
    return headers


def _jobs_with_empty_fields(workflow, subject_ids):
    """Rows whose optional fields are empty (null), for the lists to return: a pending export
    and training job, a reference label without an expert, a subject without an SNR."""
    from aggregation import services as aggregation_services
    from aggregation.models import AggregationRun, LabelSet, LabelSetExport
    from labeling import services
    from labeling.models import Subject
    from training.models import TrainingJob

    reference = services.reference_set_get_or_create(
        name="rubin", team=services.expert_team_get_or_create("rubin"))
    services.reference_labels_bulk_create(reference, [(subject_ids[0], "real")])
    Subject.objects.filter(pk=subject_ids[1]).update(snr=None, ra=None, dec=None)
    run = aggregation_services.run_create(workflow=workflow, reference_sets=[reference])
    AggregationRun.objects.filter(pk=run.pk).update(status=AggregationRun.Status.DONE)
    LabelSetExport.objects.create(run=run, options={})
    label_set = LabelSet.objects.create(number=1, run=run, scenario="stable", options={},
                                        manifest={}, path="label-set-0001", archive_sha256="0",
                                        archive_size=0, n_subjects=0)
    TrainingJob.objects.create(name="v0.1", label_set=label_set, options={},
                               trigger=TrainingJob.Trigger.API)


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@pytest.mark.django_db
def test_the_api_keeps_to_its_schema(case, callers):
    for headers in callers:
        case.call_and_validate(headers=headers, checks=CHECKS)


def test_the_schema_documents_the_stamp_images_and_the_error_shape():
    operations = {(operation.method.upper(), operation.path)
                  for operation in (result.ok() for result in schema.get_all_operations())}
    assert ("GET", "/api/subjects/{subject_id}/images/{kind}.png") in operations
    raw = schema.raw_schema
    image = raw["paths"]["/api/subjects/{subject_id}/images/{kind}.png"]["get"]
    assert "image/png" in image["responses"]["200"]["content"]
    assert image["responses"]["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"}
    assert raw["components"]["schemas"]["Error"]["required"] == ["error", "detail"]
