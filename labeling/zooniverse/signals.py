"""What an import tells the apps above labeling, which it must not import.

`classifications_imported` is sent, with ``workflow_id``, after an import that stored
classifications has committed: the answers went in without touching the live aggregation
state, so whoever keeps that state rebuilds it (aggregation connects a receiver).
"""

from django.dispatch import Signal

classifications_imported = Signal()
