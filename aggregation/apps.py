from django.apps import AppConfig


class AggregationConfig(AppConfig):
    name = "aggregation"
    verbose_name = "SWAP aggregation"

    def ready(self):
        from aggregation.receivers import live_run_rebuild_after_import
        from labeling.zooniverse.signals import classifications_imported

        classifications_imported.connect(
            live_run_rebuild_after_import, dispatch_uid="aggregation.live_run_after_import"
        )
