"""Real-browser tests: Playwright's sync API driving Debian's Chromium against the live server.

`make test` installs what they need (Chromium from apt when /usr/bin/chromium is missing,
axe-core with `npm ci`). Nothing here downloads a browser: Playwright launches the system one.
Timings, screenshots and the accessibility report go to artifacts/e2e/ (not committed).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from labeling import services
from labeling.models import ReferenceLabel, Workflow
from simulation.triplets import generate_subjects

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls from a
# thread with a running loop unless told that this synchronous use is deliberate.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
ARTIFACTS = Path(settings.BASE_DIR) / "artifacts" / "e2e"
AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 900}
# axe-core's violations on the page, once AXE is injected: [{id, impact, nodes}].
AXE_RUN = """async () => {
    const r = await axe.run(document, {resultTypes: ['violations']});
    return r.violations.map(v => ({id: v.id, impact: v.impact,
                                   nodes: v.nodes.map(n => n.target.join(' '))}));
}"""


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser():
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
                    "(or `apt-get install chromium`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def context(browser, live_server):
    context = browser.new_context(viewport=DESKTOP, base_url=live_server.url)
    context.set_default_timeout(15_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    assert not errors, f"JavaScript errors on the page: {errors}"


def build_workflow(slug: str = "e2e", *, n_science: int = 16, n_reference: int = 0,
                   seed: int = 11, feedback: bool = False, gold_rate: float | None = None
                   ) -> tuple[Workflow, list[int], dict[int, ReferenceLabel]]:
    """A workflow of simulated subjects; the last `n_reference` are reference subjects with
    their true label and an explanation. Returns the workflow, the science subject ids and
    the reference labels by subject id."""
    workflow = services.workflow_create(slug=slug, project_name=f"Difference Detectives {slug}")
    changed = []
    if feedback:
        workflow.feedback_enabled = True
        changed.append("feedback_enabled")
    if gold_rate is not None:
        workflow.gold_schedule = [[None, gold_rate]]
        changed.append("gold_schedule")
    if changed:
        workflow.save(update_fields=changed)
    subject_set = services.subject_set_attach(workflow=workflow, name=f"{slug}-set")
    simulated = list(generate_subjects(n_science + n_reference, seed))
    report = services.subjects_ingest((s.record for s in simulated), subject_set=subject_set)
    assert report.ok, report.rejected
    assert len(report.subject_ids) == len(simulated)
    ids = report.subject_ids
    labels: dict[int, ReferenceLabel] = {}
    if n_reference:
        team = services.expert_team_get_or_create("e2e-experts")
        reference_set = services.reference_set_get_or_create(name=f"{slug}-ref", team=team)
        for subject_id, sim in zip(ids[n_science:], simulated[n_science:], strict=True):
            labels[subject_id] = ReferenceLabel.objects.create(
                reference_set=reference_set, subject_id=subject_id, label=sim.truth,
                explanation=f"an expert's note on this {sim.kind.replace('_', ' ')}",
            )
    return workflow, ids[:n_science], labels


def tutorial_seen(context, workflow: Workflow) -> None:
    """Every page of this context starts as for a volunteer who has seen the tutorial."""
    context.add_init_script(
        f"localStorage.setItem('realbogus:tutorial-seen:{workflow.pk}', '1')"
    )


def subject_id(page) -> int:
    return int(page.locator("#classify").get_attribute("data-subject-id"))


def wait_for_subject(page, previous: int | None = None) -> int:
    """Wait until a subject other than `previous` is on screen and answerable."""
    page.wait_for_function(
        """previous => {
            const root = document.getElementById('classify');
            return root.dataset.state === 'ready' && root.dataset.subjectId
                && Number(root.dataset.subjectId) !== previous;
        }""",
        arg=previous,
    )
    return subject_id(page)


def wait_for_preloaded(page, n: int = 1) -> None:
    """Wait until `n` upcoming subjects are decoded and waiting in the page's queue."""
    page.wait_for_function(
        "n => Number(document.getElementById('classify').dataset.queued || 0) >= n", arg=n
    )


def wait_until_saved(page) -> None:
    page.wait_for_function(
        "document.getElementById('sync').dataset.pending === '0'"
        " && JSON.parse(localStorage.getItem('realbogus:outbox:v1') || '[]').length === 0"
    )


def outbox(page) -> list[dict]:
    return page.evaluate("JSON.parse(localStorage.getItem('realbogus:outbox:v1') || '[]')")


def next_subject_times(page) -> list[float]:
    return page.evaluate(
        "performance.getEntriesByName('next-subject').map(e => e.duration)"
    )


def record(artifacts: Path, name: str, data) -> None:
    (artifacts / name).write_text(json.dumps(data, indent=2) + "\n")


def wait_for_subject_or_done(page, previous: int | None) -> int | None:
    """The next subject's id, or None when the page says there is nothing left."""
    page.wait_for_function(
        """previous => {
            const root = document.getElementById('classify');
            if (root.dataset.state === 'all-seen' || root.dataset.state === 'workflow-finished') {
                return true;
            }
            return root.dataset.state === 'ready' && Number(root.dataset.subjectId) !== previous;
        }""",
        arg=previous,
    )
    state = page.locator("#classify").get_attribute("data-state")
    return None if state in ("all-seen", "workflow-finished") else subject_id(page)


def classify_everything(page, key: str = "r", limit: int = 60) -> list[int]:
    """Answer every subject the page offers, with the keyboard; the ids in the order shown."""
    shown: list[int] = []
    current = wait_for_subject_or_done(page, None)
    while current is not None:
        assert len(shown) < limit, "the page never ran out of subjects"
        shown.append(current)
        page.keyboard.press(key)
        current = wait_for_subject_or_done(page, current)
    return shown


def sign_in(page, username: str, password: str, next_url: str) -> None:
    page.goto(f"/accounts/login/?next={next_url}")
    page.fill("#id_login", username)
    page.fill("#id_password", password)
    page.keyboard.press("Enter")
    # The login page's own address ends with ?next=...: wait for the path itself.
    page.wait_for_url(lambda url: urlsplit(url).path == next_url)


EXPERT_PASSWORD = "pw-expert-12345!"


def build_review(django_user_model, slug: str = "review", *, n_science: int = 12,
                 n_reference: int = 4, n_volunteers: int = 6, seed: int = 5):
    """A workflow ready for expert review: simulated subjects, a reference set, volunteers'
    answers on every subject, a finished SWAP run, a second team's label on one subject,
    and an expert `curator` of the reference set's team (password EXPERT_PASSWORD).
    Returns the workflow, the science subject ids and the reference set."""
    from aggregation import services as aggregation_services

    workflow, science, labels = build_workflow(slug, n_science=n_science,
                                               n_reference=n_reference, seed=seed)
    # No retirement while the crowd answers: every answer counts.
    workflow.retire_agree, workflow.retire_max = 50, 50
    workflow.save(update_fields=["retire_agree", "retire_max"])
    reference_set = next(iter(labels.values())).reference_set
    truth = {s: label.label for s, label in labels.items()}
    rng = random.Random(seed)
    for v in range(n_volunteers):
        volunteer = services.volunteer_for_external_name(f"{slug}-volunteer-{v}")
        for subject in [*science, *truth]:
            right = truth.get(subject, rng.choice(["real", "bogus"]))
            wrong = "bogus" if right == "real" else "real"
            services.classification_create(
                volunteer=volunteer, workflow_id=workflow.pk, subject_id=subject,
                answer=right if rng.random() < 0.75 else wrong, client_id=uuid.uuid4(),
            )
    run = aggregation_services.run_create(workflow=workflow, reference_sets=[reference_set])
    aggregation_services.run_execute(run.pk)
    other_team = services.expert_team_get_or_create(f"{slug}-oxford")
    other_set = services.reference_set_get_or_create(name=f"{slug}-oxford", team=other_team)
    services.reference_labels_bulk_create(other_set, [(s, "bogus") for s in science])
    curator = django_user_model.objects.create_user("curator", password=EXPERT_PASSWORD)
    curator.groups.add(reference_set.team.group)
    return workflow, science, reference_set
