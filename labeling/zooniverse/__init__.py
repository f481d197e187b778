"""Import of Zooniverse (Panoptes) classification exports, so an existing project can be
re-aggregated here.

`parse` reads an export file (pure: stdlib only, no Django); `services` writes what it read.
The conventions, which make a re-import of the same (or a newer) export change nothing:

- **Classifications** keep Zooniverse's id as ``external_id = "zooniverse:<classification_id>"``
  and get ``client_id = uuid5(CLIENT_ID_NAMESPACE, "<workflow slug>/<external id>")``. A row
  whose external id the target workflow already holds is "already present" and is not
  imported again; the same export imported into another workflow goes in there in full.
- **Volunteers** (`Volunteer.external_name`): a logged-in volunteer is
  ``zooniverse:user:<user_id>`` (the numeric id, which survives a change of user name); an
  anonymous one is ``zooniverse:not-logged-in-<hash>``, so each distinct hash is its own
  volunteer.
- **Subjects** are found or created by ``external_id = "zooniverse:<subject_id>"`` in the
  workflow's project. New ones have no stamps (``stamp_size = 0``, ``original_shapes = []``):
  they are aggregated but never served. Their metadata is the row's ``subject_data`` entry
  without Zooniverse's changing ``retired`` block; origin (or handle), snr, ra, dec, band,
  psfFlux, psfFluxErr and reliability are copied to the subject's fields when present.
- **Order**: classifications are decided in (created_at, classification_id) order, by the
  same retirement rule (`labeling.rules`) as `labeling.services.classification_create`
  applies live: all at once in memory and written with COPY (the default), or one by one
  through the service (`--row-by-row`); see `services` for both, and for taking the
  export's own retirements instead.
"""
