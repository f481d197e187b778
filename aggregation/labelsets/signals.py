"""Signals of the label-set export, so that apps built on label sets (training) can act on a new
one without the export depending on them."""

from django.dispatch import Signal

# Sent once the LabelSet's transaction has committed, with `label_set`. A receiver that fails
# does not undo the export: the set is registered and immutable by then.
label_set_exported = Signal()
