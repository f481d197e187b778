"""The sweeper's periodic task (celery beat, settings.CELERY_BEAT_SCHEDULE)."""

from celery import shared_task


@shared_task
def sweep_stuck_jobs() -> dict:
    """Re-queue or fail stuck jobs and remove left-over files; what it did, for the log."""
    from operations import sweeper

    report = sweeper.sweep()
    return {"requeued": report.requeued, "failed": report.failed,
            "staging_removed": len(report.staging_removed),
            "stamps_removed": report.stamps_removed}
