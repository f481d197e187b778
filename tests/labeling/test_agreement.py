"""Agreement statistics on the database: the selectors on two teams' sets, the API's JSON,
the pages, every permission boundary, and a query count that does not grow with subjects."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from labeling import services
from labeling.agreement import selectors
from labeling.errors import NotFound
from labeling.models import Subject
from tests.conftest import add_subjects, token_client

pytestmark = pytest.mark.django_db

# Every page and image of the agreement statistics; `{set_id}` is the rubin set.
PAGES = ["/reference/", "/reference/agreement/", "/reference/sets/{set_id}/",
         "/reference/balance.png", "/reference/sets/{set_id}/balance.png"]
ROLES = ["anonymous", "volunteer", "ml", "expert_rubin", "expert_oxford", "staff"]
READERS = {"expert_rubin", "expert_oxford", "staff"}
# Signing in, the role check, the sets, the labels, the experts' names, the class balance;
# the bound is the same for 8 labelled subjects and for 60.
MAX_QUERIES = 6


class Teams:
    """Two teams' sets on eight subjects (s0..s3 origin `ss`, s4..s7 `gaia`):

    subject  s0    s1    s2    s3    s4      s5    s6               s7
    rubin    real  real  bogus bogus unsure  real  bogus (import)   -
             alice alice alice alice bob     bob
    oxford   real  bogus bogus bogus unsure  bogus -                real
             carol carol carol carol carol   carol                  carol
    """

    def __init__(self, workflow, make_user):
        self.subject_ids = add_subjects(workflow, 8)
        Subject.objects.filter(pk__in=self.subject_ids[4:]).update(origin="gaia")
        self.rubin = services.reference_set_get_or_create(
            name="rubin", team=services.expert_team_get_or_create("rubin"))
        self.oxford = services.reference_set_get_or_create(
            name="oxford", team=services.expert_team_get_or_create("oxford"))
        self.alice = make_user("alice", team="rubin")
        self.bob = make_user("bob", team="rubin")
        self.carol = make_user("carol", team="oxford")
        for i, label in enumerate(["real", "real", "bogus", "bogus"]):
            self.label(self.rubin, i, label, self.alice)
        self.label(self.rubin, 4, "unsure", self.bob)
        self.label(self.rubin, 5, "real", self.bob)
        services.reference_labels_bulk_create(self.rubin, [(self.subject_ids[6], "bogus")])
        for i, label in zip([0, 1, 2, 3, 4, 5, 7],
                            ["real", "bogus", "bogus", "bogus", "unsure", "bogus", "real"],
                            strict=True):
            self.label(self.oxford, i, label, self.carol)

    def label(self, reference_set, index: int, label: str, expert) -> None:
        services.reference_label_set(
            reference_set=reference_set, subject=Subject.objects.get(pk=self.subject_ids[index]),
            label=label, expert=expert,
        )


@pytest.fixture
def teams(workflow, make_user) -> Teams:
    return Teams(workflow, make_user)


@pytest.fixture
def clients(make_user):
    return {
        "anonymous": APIClient(),
        "volunteer": token_client(make_user("volunteer")),
        "ml": token_client(make_user("ml", ml=True)),
        "expert_rubin": token_client(make_user("rubin-expert", team="rubin")),
        "expert_oxford": token_client(make_user("oxford-expert", team="oxford")),
        "staff": token_client(make_user("staff", staff=True)),
    }


@pytest.fixture
def page_clients(make_user):
    clients = {"anonymous": Client()}
    for role, user in [("volunteer", make_user("page-volunteer")),
                       ("ml", make_user("page-ml", ml=True)),
                       ("expert_rubin", make_user("page-rubin", team="rubin")),
                       ("expert_oxford", make_user("page-oxford", team="oxford")),
                       ("staff", make_user("page-staff", staff=True))]:
        clients[role] = Client()
        clients[role].force_login(user)
    return clients


# --- selectors ---------------------------------------------------------------------------------


def test_a_pair_of_sets_is_compared_on_the_subjects_both_label(teams):
    report = selectors.reference_agreement()
    [pair] = report.pairs
    # Sets in name order: oxford's labels are the rows, rubin's the columns.
    assert (pair.first.name, pair.second.name) == ("oxford", "rubin")
    agreement = pair.agreement
    # s0 real/real; s1 and s5 bogus/real; s2, s3 bogus/bogus; s4 unsure/unsure.
    assert agreement.confusion.tolist() == [[1, 0, 0], [2, 2, 0], [0, 0, 1]]
    assert agreement.n == 6
    assert agreement.percent_agreement == pytest.approx(400 / 6)
    # rows (1, 4, 1), columns (3, 2, 1): sum r c = 3 + 8 + 1 = 12;
    # kappa = (6 * 4 - 12) / (36 - 12) = 0.5
    assert agreement.kappa == pytest.approx(0.5)
    # Real/Bogus only, [[1, 0], [2, 2]]: (5 * 3 - 11) / (25 - 11) = 4 / 14
    assert agreement.n_real_bogus == 5
    assert agreement.kappa_real_bogus == pytest.approx(4 / 14)


def test_each_expert_is_compared_with_the_other_labels_of_their_subjects(teams):
    experts = {e.username: e for e in selectors.reference_agreement().experts}
    assert set(experts) == {"alice", "bob", "carol"}  # the imported label has no expert

    alice = experts["alice"].against_consensus
    # alice vs carol's labels: s0 real/real, s1 real/bogus, s2 and s3 bogus/bogus.
    assert alice.n_labelled == 4
    assert alice.with_consensus.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 0]]
    assert alice.with_consensus.percent_agreement == pytest.approx(75.0)
    # rows (2, 2, 0), columns (1, 3, 0): (4 * 3 - 8) / (16 - 8) = 0.5
    assert alice.with_consensus.kappa == pytest.approx(0.5)

    bob = experts["bob"].against_consensus
    # s4 unsure/unsure, s5 real/bogus: (2 * 1 - 1) / (4 - 1)
    assert bob.n_labelled == 2
    assert bob.with_consensus.kappa == pytest.approx(1 / 3)

    carol = experts["carol"].against_consensus
    # s7 has no other label: labelled, not compared.
    assert carol.n_labelled == 7
    assert carol.n_with_consensus == 6
    assert carol.with_consensus.kappa == pytest.approx(0.5)


def test_class_balance_per_origin_of_each_set(teams):
    summaries = {s.reference_set.name: s for s in selectors.reference_agreement().sets}
    rubin = summaries["rubin"]
    assert rubin.reference_set.team.name == "rubin"
    assert rubin.counts == {"real": 3, "bogus": 3, "unsure": 1}
    assert [(row.origin, row.counts) for row in rubin.by_origin] == [
        ("gaia", {"real": 1, "bogus": 1, "unsure": 1}),
        ("ss", {"real": 2, "bogus": 2, "unsure": 0}),
    ]
    assert summaries["oxford"].counts == {"real": 2, "bogus": 4, "unsure": 1}
    assert summaries["oxford"].n_labels == 7


def test_a_filter_to_one_set_has_no_pairs_and_no_consensus(teams):
    report = selectors.reference_agreement(["rubin"])
    assert [s.reference_set.name for s in report.sets] == ["rubin"]
    assert report.pairs == []
    for expert in report.experts:
        assert expert.against_consensus.n_with_consensus == 0
        assert expert.against_consensus.with_consensus.kappa is None


def test_unknown_set_names_are_not_found(teams):
    with pytest.raises(NotFound, match="nowhere"):
        selectors.reference_agreement(["rubin", "nowhere"])


def test_a_changed_label_is_counted_as_it_is_now(teams):
    teams.label(teams.rubin, 1, "bogus", teams.alice)  # now agrees with carol on s1
    [pair] = selectors.reference_agreement().pairs
    assert pair.agreement.confusion.tolist() == [[1, 0, 0], [1, 3, 0], [0, 0, 1]]


# --- the API -----------------------------------------------------------------------------------


def test_the_api_returns_sets_pairs_and_experts(teams, clients):
    response = clients["expert_oxford"].get("/api/reference-agreement/")
    assert response.status_code == 200
    body = response.json()
    assert body["categories"] == ["real", "bogus", "unsure"]
    assert [(s["name"], s["team"], s["n_labels"]) for s in body["sets"]] == [
        ("oxford", "oxford", 7), ("rubin", "rubin", 7)]
    assert body["sets"][1]["id"] == teams.rubin.pk
    assert body["sets"][1]["counts"] == {"real": 3, "bogus": 3, "unsure": 1}
    assert body["sets"][1]["by_origin"] == [
        {"origin": "gaia", "counts": {"real": 1, "bogus": 1, "unsure": 1}},
        {"origin": "ss", "counts": {"real": 2, "bogus": 2, "unsure": 0}},
    ]
    [pair] = body["pairs"]
    assert pair == {
        "first": "oxford", "second": "rubin",
        "agreement": {
            "n": 6, "confusion_matrix": [[1, 0, 0], [2, 2, 0], [0, 0, 1]],
            "percent_agreement": pytest.approx(400 / 6), "kappa": pytest.approx(0.5),
            "kappa_band": "moderate", "n_real_bogus": 5,
            "kappa_real_bogus": pytest.approx(4 / 14),
        },
    }
    assert [e["username"] for e in body["experts"]] == ["alice", "bob", "carol"]
    experts = {e["username"]: e for e in body["experts"]}
    assert experts["alice"]["id"] == teams.alice.pk
    assert experts["alice"]["n_labelled"] == 4
    assert experts["alice"]["against_consensus"]["kappa"] == pytest.approx(0.5)
    assert experts["carol"]["against_consensus"]["n"] == 6


def test_the_api_filters_sets_and_gives_null_for_undefined_kappa(teams, clients):
    body = clients["staff"].get("/api/reference-agreement/?sets=rubin").json()
    assert [s["name"] for s in body["sets"]] == ["rubin"]
    assert body["pairs"] == []
    alice = next(e for e in body["experts"] if e["username"] == "alice")
    assert alice["against_consensus"]["n"] == 0
    assert alice["against_consensus"]["kappa"] is None
    assert alice["against_consensus"]["percent_agreement"] is None
    assert alice["against_consensus"]["kappa_band"] == "undefined"


def test_an_unknown_set_is_a_404_json_error(teams, clients):
    response = clients["staff"].get("/api/reference-agreement/?sets=rubin,nowhere")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found",
                               "detail": "unknown reference set(s): nowhere"}


def test_a_set_filter_of_only_commas_is_a_400(teams, clients):
    response = clients["staff"].get("/api/reference-agreement/", {"sets": " , ,"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert "sets" in response.json()["fields"]


def test_an_empty_set_filter_is_no_filter_like_a_blank_form_field(teams, clients):
    body = clients["staff"].get("/api/reference-agreement/", {"sets": ""}).json()
    assert [s["name"] for s in body["sets"]] == ["oxford", "rubin"]


@pytest.mark.parametrize("role", ROLES)
def test_only_staff_and_experts_read_the_api(teams, clients, role):
    response = clients[role].get("/api/reference-agreement/")
    if role in READERS:
        assert response.status_code == 200
        assert response.json()["pairs"]
    else:
        assert response.status_code == 403
        assert set(response.json()) == {"error", "detail"}


@pytest.mark.parametrize("role", ["anonymous", "volunteer", "ml"])
def test_no_one_outside_learns_whether_a_set_exists(teams, clients, role):
    response = clients[role].get("/api/reference-agreement/?sets=nowhere")
    assert response.status_code == 403


def test_the_api_is_in_the_openapi_schema(clients):
    schema = clients["staff"].get("/api/schema/", {"format": "json"}).json()
    operation = schema["paths"]["/api/reference-agreement/"]["get"]
    assert [p["name"] for p in operation["parameters"]] == ["sets"]
    report = schema["components"]["schemas"]["AgreementReport"]
    assert set(report["properties"]) == {"categories", "sets", "pairs", "experts"}


def test_the_number_of_queries_does_not_grow_with_subjects(teams, workflow, clients,
                                                           django_assert_max_num_queries):
    client = clients["expert_rubin"]
    with django_assert_max_num_queries(MAX_QUERIES):
        assert client.get("/api/reference-agreement/").status_code == 200
    more = add_subjects(workflow, 52, seed=1)
    services.reference_labels_bulk_create(teams.rubin, [(pk, "real") for pk in more])
    services.reference_labels_bulk_create(teams.oxford, [(pk, "bogus") for pk in more])
    with django_assert_max_num_queries(MAX_QUERIES):
        body = client.get("/api/reference-agreement/").json()
    assert body["pairs"][0]["agreement"]["n"] == 6 + 52


# --- the pages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", PAGES)
def test_only_staff_and_experts_see_the_pages(teams, page_clients, role, page):
    url = page.format(set_id=teams.rubin.pk)
    response = page_clients[role].get(url)
    if role == "anonymous":
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    elif role in READERS:
        assert response.status_code == 200
    else:
        assert response.status_code == 403


def test_the_set_list_shows_counts_per_class_and_links(teams, page_clients):
    page = page_clients["expert_rubin"].get("/reference/").content.decode()
    assert f'href="/reference/sets/{teams.rubin.pk}/"' in page
    csv_url = f"/api/reference-sets/{teams.rubin.pk}/labels.csv"
    assert f'href="{csv_url}"' in page
    assert page_clients["expert_rubin"].get(csv_url).status_code == 200
    # rubin: 3 real, 3 bogus, 1 unsure, 7 in all.
    assert ('<td class="number">3</td><td class="number">3</td><td class="number">1</td>\n'
            '      <td class="number">7</td>') in page
    assert "<caption>" in page


def test_the_agreement_page_shows_the_confusion_matrix_kappa_and_experts(teams, page_clients):
    page = page_clients["staff"].get("/reference/agreement/").content.decode()
    assert "<caption>Labels of oxford (rows) against rubin (columns)</caption>" in page
    assert '<th scope="row">Bogus</th>\n      <td class="number">2</td><td class="number">2</td>' \
           '<td class="number">0</td>' in page
    assert "0.50 (moderate)" in page
    for username in ("alice", "bob", "carol"):
        assert f'<th scope="row">{username}</th>' in page
    assert 'src="/reference/balance.png"' in page


def test_a_set_page_shows_its_balance_per_origin(teams, page_clients):
    page = page_clients["expert_oxford"].get(f"/reference/sets/{teams.rubin.pk}/")
    html = page.content.decode()
    assert "<caption>rubin: labels per origin handle</caption>" in html
    assert '<th scope="row">gaia</th>' in html
    assert f'src="/reference/sets/{teams.rubin.pk}/balance.png"' in html


def test_the_balance_plots_are_png_images(teams, page_clients):
    for url in ("/reference/balance.png", f"/reference/sets/{teams.rubin.pk}/balance.png"):
        response = page_clients["staff"].get(url)
        assert response["Content-Type"] == "image/png"
        assert response.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_an_unknown_set_page_is_404(teams, page_clients):
    assert page_clients["staff"].get("/reference/sets/999999/").status_code == 404
    assert page_clients["staff"].get("/reference/sets/999999/balance.png").status_code == 404


def test_a_set_with_no_labels_has_an_empty_balance(teams, page_clients):
    empty = services.reference_set_get_or_create(name="empty", team=teams.rubin.team)
    client = page_clients["staff"]
    assert "No labels yet." in client.get(f"/reference/sets/{empty.pk}/").content.decode()
    plot = client.get(f"/reference/sets/{empty.pk}/balance.png")
    assert plot.content.startswith(b"\x89PNG\r\n\x1a\n")
    [pair] = client.get("/api/reference-agreement/?sets=empty,rubin").json()["pairs"]
    assert pair["agreement"]["n"] == 0
    assert pair["agreement"]["kappa"] is None


def test_the_pages_work_with_no_reference_set(page_clients):
    for url in ("/reference/", "/reference/agreement/", "/reference/balance.png"):
        assert page_clients["staff"].get(url).status_code == 200
