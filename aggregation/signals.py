"""Signals of aggregation runs, so that apps built on a run's results (review) can act on a new
one without the aggregation depending on them."""

from django.dispatch import Signal

# Sent once a run's results have committed, with `run`. A receiver that fails does not undo
# the run.
run_finished = Signal()
