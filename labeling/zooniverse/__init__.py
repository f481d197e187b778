"""Import of Zooniverse (Panoptes) classification exports, so an existing project can be
re-aggregated here.

`parse` reads an export file (pure: stdlib only, no Django); `services` writes what it read.
The conventions, which make a re-import of the same (or a newer) export change nothing:

- **Classifications** keep Zooniverse's id as ``external_id = "zooniverse:<classification_id>"``
  and get ``client_id = uuid5(CLIENT_ID_NAMESPACE, that external id)``. A row whose external
  id is already stored is "already present" and is not replayed.
- **Volunteers** (`Volunteer.external_name`): a logged-in volunteer is
  ``zooniverse:user:<user_id>`` (the numeric id, which survives a change of user name); an
  anonymous one is ``zooniverse:not-logged-in-<hash>``, so each distinct hash is its own
  volunteer.
- **Subjects** are found or created by ``external_id = "zooniverse:<subject_id>"`` in the
  workflow's project. New ones have no stamps (``stamp_size = 0``, ``original_shapes = []``):
  they are aggregated but never served. Their metadata is the row's ``subject_data`` entry
  without Zooniverse's changing ``retired`` block; origin (or handle), snr, ra, dec, band,
  psfFlux, psfFluxErr and reliability are copied to the subject's fields when present.
- **Order**: classifications are replayed through `labeling.services.classification_create`
  in (created_at, classification_id) order, so the retirement rule applies as it did live.
"""
