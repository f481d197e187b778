"""The model registry in /admin/: every model listed, each list and record opens for staff."""

from __future__ import annotations

import pytest
from django.test import Client

from training.models import SubjectScore

pytestmark = pytest.mark.django_db

MODELS = ["modelversion", "evaluation", "trainingjob", "scoringjob", "subjectscore"]


def test_staff_find_the_registry_in_the_admin(base_version, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-12345!x")
    client = Client()
    client.force_login(admin)
    index = client.get("/admin/training/").content.decode()
    for model in MODELS:
        assert f'href="/admin/training/{model}/"' in index
        assert client.get(f"/admin/training/{model}/").status_code == 200
    page = client.get(f"/admin/training/modelversion/{base_version.pk}/change/")
    assert page.status_code == 200
    assert base_version.weights_sha256 in page.content.decode()
    subject = base_version.label_set.run.workflow.subject_sets.get().subjects.first()
    score = SubjectScore.objects.create(subject=subject, model_version=base_version,
                                        reliability=0.25)
    # A score is shown, never editable.
    shown = client.get(f"/admin/training/subjectscore/{score.pk}/change/").content.decode()
    assert "0.25" in shown
    assert 'name="reliability"' not in shown
