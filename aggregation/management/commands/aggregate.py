from django.core.management.base import BaseCommand, CommandError

from aggregation import selectors, services
from aggregation.models import AggregationRun
from aggregation.swap import (
    PRIOR_MODES,
    BreakdownRow,
    EmOptions,
    format_breakdown,
    label_accuracy,
)
from aggregation.swap.baselines import crowdkit_dawid_skene
from labeling.errors import LabelingError
from labeling.management.commands._progress import progress_bar
from labeling.models import Workflow
from labeling.records import DEFAULT_UNION_POLICY, UNION_DROP, UNION_POLICIES

# The command's EM flags (argparse destinations) and the EmOptions fields they set.
_EM_FLAGS = {"em_prior": "prior_mode", "em_prior_strength": "prior_strength",
             "em_max_iter": "max_iter", "em_tol": "tol"}


class Command(BaseCommand):
    help = (
        "Run SWAP aggregation on a workflow's counted classifications and print the breakdown "
        "table (scenario x reference set -> total Real, total Bogus)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--workflow", required=True, help="workflow slug")
        parser.add_argument("--reference-sets", required=True,
                            help="reference set names: rubin, or a union rubin+oxford")
        parser.add_argument("--union-policy", default=DEFAULT_UNION_POLICY, choices=UNION_POLICIES,
                            help="how a union settles a subject its sets label differently: "
                            "drop (it calibrates nobody; the default) or first (the first-named "
                            "set wins: in rubin+oxford, rubin); either way it is listed as a "
                            "conflict")
        parser.add_argument("--mode", default="batch", choices=AggregationRun.Mode.values,
                            help="batch (final skills), online (skill at each answer's time; "
                            "becomes the live run), em (skills, and unless --em-prior fixed the "
                            "prior, also learned from non-reference subjects)")
        parser.add_argument("--prior", type=float, help="Pr(Real) before any vote")
        parser.add_argument("--all-volunteers", action="store_true",
                            help="let volunteers with no reference classification contribute")
        parser.add_argument("--stability-window", type=int)
        parser.add_argument("--real-threshold", type=float)
        parser.add_argument("--bogus-threshold", type=float)
        parser.add_argument("--skill-strength", type=float,
                            help="pseudo-count total of the prior skill")
        em_defaults = EmOptions()
        parser.add_argument("--em-prior", choices=PRIOR_MODES,
                            help="EM: learn the class prior Pr(Real) from the data, or keep "
                            f"--prior fixed (default {em_defaults.prior_mode})")
        parser.add_argument("--em-prior-strength", type=float,
                            help="EM: pseudo-subjects at --prior behind a learned prior, so a "
                            f"small dataset cannot run away (default "
                            f"{em_defaults.prior_strength:g})")
        parser.add_argument("--em-max-iter", type=int,
                            help=f"EM: iteration cap (default {em_defaults.max_iter}); a run "
                            "that reaches it is reported as not converged")
        parser.add_argument("--em-tol", type=float,
                            help="EM: converged when no skill and not the prior moves by more "
                            f"than this (default {em_defaults.tol:g})")
        parser.add_argument("--queue", action="store_true",
                            help="queue the run on the Celery 'aggregation' queue, don't wait")
        parser.add_argument("--compare", action="store_true",
                            help="with simulated truth: also score majority vote and "
                            "Dawid-Skene (crowd-kit, from requirements-bench.txt)")

    def handle(self, *args, **options):
        try:
            workflow = Workflow.objects.get(slug=options["workflow"])
        except Workflow.DoesNotExist:
            raise CommandError(f"no workflow {options['workflow']!r}") from None
        try:
            reference_sets = selectors.reference_sets_parse(options["reference_sets"])
            params = services.swap_params(
                prior=options["prior"],
                require_reference=False if options["all_volunteers"] else None,
                stability_window=options["stability_window"],
                real_threshold=options["real_threshold"],
                bogus_threshold=options["bogus_threshold"],
                skill_strength=options["skill_strength"],
            )
            em = self._em_options(options)
            run = services.run_create(workflow=workflow, reference_sets=reference_sets,
                                      mode=options["mode"], params=params, em=em,
                                      union_policy=options["union_policy"])
        except LabelingError as exc:
            raise CommandError(exc.message) from None
        if options["queue"]:
            services.run_queue(run)
            self.stdout.write(f"queued aggregation run {run.pk}")
            return
        with progress_bar(None, "subject", f"run {run.pk}: write") as bar:
            try:
                run = services.run_execute(run.pk, on_progress=bar.update)
            except Exception as exc:
                raise CommandError(f"run {run.pk} failed: {exc}") from exc
        self._report(run, options["compare"])

    @staticmethod
    def _em_options(options) -> EmOptions | None:
        given = {field: options[dest] for dest, field in _EM_FLAGS.items()}
        if options["mode"] != AggregationRun.Mode.EM:
            named = [f"--{dest.replace('_', '-')}" for dest in _EM_FLAGS
                     if options[dest] is not None]
            if named:
                raise CommandError(f"{', '.join(named)} only apply to --mode em")
            return None
        return services.em_options(**given)

    def _report(self, run: AggregationRun, compare: bool) -> None:
        out = self.stdout
        timings = ", ".join(f"{k[:-2]} {v:.2f} s" for k, v in run.timings.items())
        out.write(
            f"run {run.pk} ({run.mode}, reference {run.reference_name}): "
            f"{run.n_classifications:,} classifications, {run.n_subjects:,} subjects, "
            f"{run.n_contributing_volunteers:,} of {run.n_volunteers:,} volunteers contributing, "
            f"{run.n_reference_subjects:,} reference subjects ({timings})"
        )
        out.write(format_breakdown([BreakdownRow(**row) for row in run.summary["breakdown"]]))
        conflicts = run.summary.get("reference_conflicts", [])
        if conflicts:
            policy = selectors.run_union_policy(run)
            settled = ("dropped from the union" if policy == UNION_DROP
                       else "given the first-named set's label")
            out.write(f"{len(conflicts)} subjects the reference sets disagree on, {settled} "
                      f"(union policy {policy}; e.g. {', '.join(map(str, conflicts[:5]))})")
        if "em" in run.summary:
            em = run.summary["em"]
            options = EmOptions(**run.em_options)
            status = ("converged" if em["converged"] else
                      f"NOT converged (cap {options.max_iter} reached)")
            out.write(f"EM: {em['iterations']} iterations, {status} (tolerance "
                      f"{options.tol:g}); prior Pr(Real) {em['prior_mode']}: "
                      f"{em['prior']:.3f}")
        truth = run.summary.get("truth")
        if truth is None:
            if compare:
                raise CommandError("--compare needs simulated truth (subjects from "
                                   "`simulate subjects`)")
            return
        rows = {f"SWAP {run.mode}, stable": truth["stable"],
                f"SWAP {run.mode}, unstable": truth["unstable"]}
        if compare:
            rows["majority vote (ties: no label)"] = truth["majority"]
            rows["Dawid-Skene (crowd-kit)"] = self._dawid_skene(run)
        out.write("Against simulated truth (subjects volunteers labelled, reference excluded):")
        out.write(f"  {'method':<34} {'labelled':>9} {'of':>8} {'accuracy':>9}")
        for name, row in rows.items():
            accuracy = f"{row['accuracy']:.2%}" if row["n_labelled"] else "n/a"
            out.write(f"  {name:<34} {row['n_labelled']:>9,} {row['n_subjects']:>8,} "
                      f"{accuracy:>9}")

    def _dawid_skene(self, run: AggregationRun) -> dict:
        data = selectors.classification_data(run.workflow_id)
        reference = selectors.run_reference_truth(run, data.subject_ids)
        truth = selectors.simulated_truth(run.workflow, data.subject_ids)
        try:
            labels = crowdkit_dawid_skene(data.table)
        except ImportError as exc:
            raise CommandError(str(exc)) from None
        return services.accuracy_dict(
            label_accuracy(labels, services.volunteer_truth(reference.truth, truth))
        )
