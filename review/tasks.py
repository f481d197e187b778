"""Celery tasks of the review app: they take ids and are safe to run twice."""

from celery import shared_task


@shared_task(acks_late=True)
def build_rankings(run_id: int) -> int:
    """Build the review queues' rankings of a finished aggregation run."""
    from review import services

    return services.rankings_build(run_id)


@shared_task(acks_late=True)
def refresh_rankings() -> list[int]:
    """The periodic rebuild (celery beat) of every active workflow's rankings."""
    from review import services

    return services.rankings_refresh()
