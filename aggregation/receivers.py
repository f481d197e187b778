"""What aggregation does when labeling tells it something (labeling never imports us)."""

from __future__ import annotations

from django.db import transaction

from aggregation import selectors, services
from aggregation.models import AggregationRun
from aggregation.swap import SwapParams


def live_run_rebuild_after_import(sender, *, workflow_id: int, **kwargs) -> None:
    """An import stored answers without touching the live run: rebuild it, as it was set up.

    A workflow without a live run has nothing to rebuild; its next batch run reads them.
    """
    live = AggregationRun.objects.filter(workflow_id=workflow_id, live=True).first()
    if live is None:
        return
    with transaction.atomic():
        run = services.run_create(
            workflow=live.workflow,
            reference_sets=selectors.run_reference_sets(live),
            mode=AggregationRun.Mode.ONLINE,
            params=SwapParams(**live.parameters),
            union_policy=selectors.run_union_policy(live),
            triggered_by="import",
        )
        services.run_queue(run)
