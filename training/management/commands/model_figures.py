from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from aggregation.labelsets import selectors as label_set_selectors
from labeling.errors import LabelingError
from training import selectors, services
from training.presenters import FIGURES

EXIT_BAD_REQUEST = 2


class Command(BaseCommand):
    help = (
        "Write a model version's evaluation figures (purity and completeness against "
        "threshold, per origin, reliability distribution, reliability against SNR, recall at "
        "rank K) as PNGs, with --compare another version drawn on the same test split. The "
        "test split is that of --label-set, by default the one the version was trained on."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, metavar="VERSION")
        parser.add_argument("--compare", metavar="VERSION", help="draw this version too")
        parser.add_argument("--label-set", type=int, metavar="N",
                            help="evaluate on this label set's test split")
        parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")

    def handle(self, *args, **options):
        try:
            version = selectors.version_get(options["model"])
            versions = [version]
            if options["compare"]:
                versions.insert(0, selectors.version_get(options["compare"]))
            label_set = (label_set_selectors.label_set_get(options["label_set"])
                         if options["label_set"] is not None else version.label_set)
            evaluations = {v.name: services.evaluation_get_or_create(v, label_set).metrics
                           for v in versions}
        except LabelingError as exc:
            raise CommandError(exc.message, returncode=EXIT_BAD_REQUEST) from None
        out: Path = options["out"]
        out.mkdir(parents=True, exist_ok=True)
        for slug, figure in FIGURES.items():
            (out / f"{slug}.png").write_bytes(figure.draw(evaluations))
        self.stdout.write(f"test split of label set {label_set.number}:")
        for name, metrics in evaluations.items():
            equal = metrics["equal_point"]
            equal_text = (f"purity = completeness = {equal['value']:.1%} at "
                          f"{equal['threshold']:.3f}" if equal else "purity never equals "
                          "completeness")
            self.stdout.write(f"  {name}: {metrics['n']:,} subjects; "
                              f"{metrics['requirement']['message']}; {equal_text}; "
                              f"recall-at-rank area {metrics['recall_at_rank']['area']:.3f}")
            if metrics["seen_in_training"]:
                self.stdout.write(f"    {metrics['seen_in_training']:,} of these subjects were "
                                  f"in what {name} or an ancestor trained or validated on: "
                                  "its figures are flattered")
        self.stdout.write(f"{len(FIGURES)} figures in {out}/")
