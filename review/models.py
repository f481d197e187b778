"""What the review app keeps: each queue's order, so that reading a page of it costs a few
indexed queries however many subjects the workflow has.

Models hold data and constraints only; `review.services` builds the rankings.
"""

from __future__ import annotations

from django.db import models

from aggregation.models import AggregationRun
from labeling.models import Workflow


class QueueRanking(models.Model):
    """One queue's order over a workflow's subjects under one finished aggregation run.

    `subject_ids` is int64 little-endian, in review order (for the random queue: in id
    order, shuffled by the request's seed). Subjects already labelled are not left out here:
    the reference set is the request's, and labelling one subject never moves the others.
    Rebuilt when a run finishes and periodically (review.tasks), so the order reflects the
    votes as of `built_at`; a page shows each subject's current votes.
    """

    workflow = models.ForeignKey(Workflow, on_delete=models.CASCADE, related_name="rankings")
    run = models.ForeignKey(AggregationRun, on_delete=models.CASCADE, related_name="rankings")
    queue = models.CharField(max_length=20)
    origin = models.CharField(max_length=40, blank=True, help_text="the origin queue's handle")
    subject_ids = models.BinaryField()
    built_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "queue", "origin"],
                                    name="one_ranking_per_queue")
        ]

    def __str__(self):
        return f"{self.queue}{f' {self.origin}' if self.origin else ''} of run {self.run_id}"
