"""The periodic drain of the outbox (celery beat, every OUTBOX_DRAIN_INTERVAL_S)."""

from celery import shared_task


@shared_task(acks_late=True, ignore_result=True)
def outbox_drain() -> int:
    from outbox import services

    return services.drain()
