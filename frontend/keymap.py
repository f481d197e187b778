"""The one key map of the stamp viewer pages (classify and review).

Each key means one thing on every page that has it: R is Real and B is Bogus wherever a
subject is answered or labelled, the arrow keys move between subjects (only the review page
has more than one subject to move between), and the viewer's keys (flip, stretch, zoom) are
the same on both pages because the viewer is shared (frontend/stamps.js). The help dialogs
and the README's table are made from this list; the pages' scripts handle the keys.
"""

from __future__ import annotations

from dataclasses import dataclass

CLASSIFY = "classify"
REVIEW = "review"
BOTH = (CLASSIFY, REVIEW)


@dataclass(frozen=True)
class Binding:
    keys: tuple[str, ...]  # what the key caps show, each a key that does the same thing
    action: str
    pages: tuple[str, ...]


KEY_MAP = (
    Binding(("R",), "Answer Real", BOTH),
    Binding(("B",), "Answer Bogus", BOTH),
    Binding(("U",), "Answer Unsure (stored, never used as reference)", (REVIEW,)),
    Binding(("N", "→"), "Next subject without labelling", (REVIEW,)),
    Binding(("P", "←"), "Previous subject", (REVIEW,)),
    Binding(("F",), "Flip: swap template and science in place, to blink between them", BOTH),
    Binding(("S",), "Next stretch: as served, zscale, min-max, asinh", BOTH),
    Binding(("Z",), "Zoom on the centre: 1, 2, 4 times, then back to 1", BOTH),
    Binding(("G",), "Open or close the field guide beside the subject", (CLASSIFY,)),
    Binding(("?",), "Open the help with this list", BOTH),
    Binding(("Esc",), "Close the help, the tutorial or the field guide", BOTH),
)


def bindings_for(page: str) -> list[Binding]:
    if page not in BOTH:
        raise ValueError(f"page must be one of {', '.join(BOTH)}, got {page!r}")
    return [binding for binding in KEY_MAP if page in binding.pages]
