from django.apps import AppConfig


class AggregationConfig(AppConfig):
    name = "aggregation"
    verbose_name = "SWAP aggregation"

    def ready(self):
        # The classification and reference-label services call these through labeling.hooks:
        # labeling never imports aggregation.
        from aggregation import services
        from labeling import hooks

        hooks.on_answer_stored(services.live_apply)
        hooks.on_reference_labels_changed(services.live_rebuild_for_subjects)

        from aggregation.receivers import live_run_rebuild_after_import
        from labeling.zooniverse.signals import classifications_imported

        classifications_imported.connect(
            live_run_rebuild_after_import, dispatch_uid="aggregation.live_run_after_import"
        )
