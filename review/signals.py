"""The review app's receivers: a finished aggregation run gets its queues' rankings built."""

from django.db import transaction
from django.dispatch import receiver

from aggregation.models import AggregationRun
from aggregation.signals import run_finished


@receiver(run_finished, sender=AggregationRun, dispatch_uid="review.rankings_on_run")
def _build_rankings(sender, run: AggregationRun, **kwargs) -> None:
    from review.tasks import build_rankings

    transaction.on_commit(lambda: build_rankings.delay(run.pk))
