"""Render the field guide's example stamps from the simulator into the frontend's static files.

The images are committed; run this again only when the simulator or the stretch changes:
    python manage.py field_guide_images
Each example is the first simulated subject of its kind (seed `--seed`) whose SNR lies in a
range where the kind is plain to see, rendered with the volunteers' stretch at one screen
pixel per stamp pixel (the page enlarges them without smoothing).
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.records import STAMP_KINDS
from labeling.rendering import render_stamp_png
from simulation.triplets import generate_batch

GUIDE_DIR = Path(__file__).resolve().parents[2] / "static" / "frontend" / "guide"
# The kinds the field guide shows, with the SNR range that picks a clear example.
GUIDE_KINDS = {
    "transient": (15, 60),
    "moving": (15, 60),
    "fading": (-60, -12),
    "dipole": (15, 80),
    "cosmic_ray": (25, 60),
    "bad_column": (60, 10_000),
    "bright_star": (10, 10_000),
    "satellite": (10, 500),
}
BATCH = 200


class Command(BaseCommand):
    help = "Render the field guide's example stamps (frontend/static/frontend/guide/)."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--max-subjects", type=int, default=20_000)

    def handle(self, *args, **options):
        wanted = dict(GUIDE_KINDS)
        GUIDE_DIR.mkdir(parents=True, exist_ok=True)
        start = 0
        while wanted and start < options["max_subjects"]:
            batch = generate_batch(options["seed"], start, start + BATCH)
            for i, kind in enumerate(batch.kinds):
                low, high = wanted.get(kind, (None, None))
                if low is None or not low <= batch.snr[i] <= high:
                    continue
                for stamp in STAMP_KINDS:
                    png = render_stamp_png(batch.cubes[i], stamp, scale=1)
                    (GUIDE_DIR / f"{kind}-{stamp}.png").write_bytes(png)
                self.stdout.write(f"{kind}: subject {start + i}, SNR {batch.snr[i]:.1f}")
                del wanted[kind]
            start += BATCH
        if wanted:
            raise CommandError(f"no example found for {', '.join(sorted(wanted))}")
