"""The landing page."""

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def test_home_lists_active_workflows_with_progress(workflow, subject_ids):
    page = Client().get("/")
    assert page.status_code == 200
    assert b"wf" in page.content
    assert b"Test project" in page.content


@pytest.mark.parametrize(
    ("role", "links", "absent"),
    [
        ({}, [], ["/review/wf/", "/reference/", "/label-sets/"]),
        ({"team": "rubin"}, ["/review/wf/", "/reference/", "/aggregation/"], ["/label-sets/"]),
        ({"ml": True}, ["/label-sets/"], ["/review/wf/", "/reference/", "/aggregation/"]),
        ({"staff": True}, ["/review/wf/", "/reference/", "/aggregation/", "/label-sets/"], []),
    ],
    ids=["volunteer", "expert", "ml-team", "staff"],
)
def test_home_links_each_role_to_its_workbench(workflow, make_user, role, links, absent):
    client = Client()
    client.force_login(make_user("someone", **role))
    page = client.get("/").content.decode()
    for link in links:
        assert f'href="{link}"' in page
    for link in absent:
        assert f'href="{link}"' not in page

