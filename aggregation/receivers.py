"""What aggregation does when labeling tells it something (labeling never imports us)."""

from __future__ import annotations

from aggregation import services
from labeling.models import Workflow


def live_run_rebuild_after_import(sender, *, workflow_id: int, **kwargs) -> None:
    """An import stored answers without touching the live run: rebuild it, as it was set up
    (a workflow without a live run has nothing to rebuild; its next batch run reads them)."""
    services.live_rebuild(Workflow.objects.get(pk=workflow_id), triggered_by="import")
