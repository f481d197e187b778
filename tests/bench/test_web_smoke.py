"""The web benchmark's parts at a tiny size, so `make test` catches a benchmark that would
crash (a COPY missing a column, a request the API now refuses). Nothing is timed here."""

from __future__ import annotations

import pytest
from django.db import connection

from bench import classify, rubin
from bench.queries import count_queries
from labeling.models import Classification

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgresql://{db['USER']}{password}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_the_classification_load_is_served_answers_that_retire_subjects():
    load = classify.ClassifyLoad(_database_url(), n_subjects=3)
    first, retiring = load.count_queries()
    assert first > 0
    assert retiring > 0
    assert load.retired() == 1
    assert Classification.objects.filter(counted=True).count() == 2


def test_a_small_rubin_season_loads_and_its_queue_answers():
    season = rubin.generate(400, 1600, 30)
    workflow_id, tokens, _ = rubin.load(_database_url(), season)
    assert Classification.objects.filter(workflow_id=workflow_id).count() == len(season.subject)
    path = f"/api/workflows/{workflow_id}/queue/?n={rubin.QUEUE_SIZE}"
    n_queries, _ = rubin._one_at_a_time(path, tokens[0], repeats=2)
    assert n_queries > 0
    # The load keeps the volunteers' counts, as answers through the API would.
    busiest = int(season.activity.argmax())
    _, answer = count_queries(path, tokens[busiest], expect=200)
    assert answer["n_classified"] == season.activity[busiest]
