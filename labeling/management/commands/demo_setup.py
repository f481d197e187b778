from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand

from aggregation.models import AggregationRun, LabelSet
from labeling import roles, services
from labeling.management.commands.simulate import SIM_REFERENCE_SET, SIM_TEAM
from labeling.models import Classification, SubjectWorkflowStatus, Workflow
from training.models import ModelVersion

DEMO_WORKFLOW = "demo"
DEMO_PROJECT = "Rubin Difference Detectives (demo)"
# Accounts for trying the roles on a local demo; the password is printed, never secret.
DEMO_PASSWORD = "demo-password"
# Simulated volunteers answer part of the demo workflow (leaving most of it for a person to
# classify), so the review queues, the aggregation pages and a label set have something to show.
DEMO_VOLUNTEERS = 60
DEMO_CLASSIFICATIONS = 1200
# A small base model trained on the demo's label set, so the model pages have a version.
DEMO_MODEL = "v0.1"
DEMO_MODEL_EPOCHS = 5
DEMO_USERS = {
    "admin": "staff",
    "expert": "an expert of the sim-experts team",
    "mlteam": "the ML team",
    "volunteer": "a signed-in volunteer",
}


class Command(BaseCommand):
    help = ("Create the demo workflow, synthetic subjects, reference labels, simulated "
            "volunteers' answers, an aggregation run, a label set, a small model version and "
            "demo accounts.")

    def add_arguments(self, parser):
        parser.add_argument("--n", type=int, default=600, help="synthetic subjects")
        parser.add_argument("--seed", type=int, default=2026)

    def handle(self, *args, **options):
        if not Workflow.objects.filter(slug=DEMO_WORKFLOW).exists():
            services.workflow_create(slug=DEMO_WORKFLOW, project_name=DEMO_PROJECT)
        if not SubjectWorkflowStatus.objects.filter(workflow__slug=DEMO_WORKFLOW).exists():
            call_command("simulate", "subjects", n=options["n"], seed=options["seed"],
                         workflow=DEMO_WORKFLOW, stdout=self.stdout)
        self._feedback()
        self._accounts()
        self._crowd(options["seed"])
        self.stdout.write(f"demo ready: workflow {DEMO_WORKFLOW!r}; accounts "
                          f"(password {DEMO_PASSWORD!r}):")
        for username, role in DEMO_USERS.items():
            self.stdout.write(f"  {username}: {role}")

    def _feedback(self):
        """The demo shows volunteers the experts' label (and the explanation `simulate` gives
        each reference label) after they answer a reference subject."""
        Workflow.objects.filter(slug=DEMO_WORKFLOW).update(feedback_enabled=True)

    def _crowd(self, seed: int):
        """Simulated answers, then a SWAP run over them, its label set and a model trained on
        it, once."""
        if not Classification.objects.filter(workflow__slug=DEMO_WORKFLOW).exists():
            call_command("simulate", "volunteers", workflow=DEMO_WORKFLOW, n=DEMO_VOLUNTEERS,
                         seed=seed, max_classifications=DEMO_CLASSIFICATIONS,
                         stdout=self.stdout)
        runs = AggregationRun.objects.filter(workflow__slug=DEMO_WORKFLOW,
                                             status=AggregationRun.Status.DONE)
        if not runs.exists():
            call_command("aggregate", workflow=DEMO_WORKFLOW, reference_sets=SIM_REFERENCE_SET,
                         stdout=self.stdout)
        run = runs.latest("pk")
        if not LabelSet.objects.filter(run__workflow__slug=DEMO_WORKFLOW).exists():
            # The unstable scenario: at demo size few subjects have the three votes that the
            # stable one needs.
            call_command("export_labels", run=run.pk, scenario="unstable", stdout=self.stdout)
        if not ModelVersion.objects.filter(name=DEMO_MODEL).exists():
            label_set = LabelSet.objects.filter(run__workflow__slug=DEMO_WORKFLOW).latest("pk")
            call_command("train", label_set=label_set.number, name=DEMO_MODEL,
                         epochs=DEMO_MODEL_EPOCHS, stdout=self.stdout)

    def _accounts(self):
        users = get_user_model()
        for username in DEMO_USERS:
            if not users.objects.filter(username=username).exists():
                users.objects.create_user(username, password=DEMO_PASSWORD,
                                          is_staff=username == "admin",
                                          is_superuser=username == "admin")
        team = services.expert_team_get_or_create(SIM_TEAM)
        users.objects.get(username="expert").groups.add(team.group)
        ml_group, _ = Group.objects.get_or_create(name=roles.ML_TEAM_GROUP)
        users.objects.get(username="mlteam").groups.add(ml_group)
