from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.errors import LabelingError
from training import selectors, storage
from training.ml.realcheck import (
    DEFAULT_REALDATA,
    RealCheckError,
    check_model,
    load_real_ztf,
)
from training.ml.weights import WeightsError, load_model

EXIT_BAD_REQUEST = 2


class Command(BaseCommand):
    help = (
        "Sim to real: score 300 real ZTF triplets (../shared/realdata) with a model version "
        "and print its ROC AUC against ZTF's drb >= 0.5 and its Spearman correlation with drb "
        "(training.ml.realcheck). "
        f"Exits {EXIT_BAD_REQUEST} when the version or the real set cannot be read."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, metavar="VERSION", help="e.g. v0.2")
        parser.add_argument("--realdata", type=Path, default=DEFAULT_REALDATA,
                            help=f"folder of the real sets (default {DEFAULT_REALDATA})")

    def handle(self, *args, **options):
        try:
            version = selectors.version_get(options["model"])
            model = load_model(storage.path_of(version.weights_path),
                               expected_sha256=version.weights_sha256)
            real = load_real_ztf(options["realdata"])
        except LabelingError as exc:
            raise CommandError(exc.message, returncode=EXIT_BAD_REQUEST) from None
        except (WeightsError, RealCheckError) as exc:
            raise CommandError(str(exc), returncode=EXIT_BAD_REQUEST) from None
        figures = check_model(model, real)
        self.stdout.write("\n".join(figures.lines(f"model {version.name}")))
