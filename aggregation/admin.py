from django.contrib import admin

from aggregation.models import (
    AggregationRun,
    LabelSet,
    LabelSetExport,
    SubjectPosterior,
    VolunteerSkill,
)


@admin.register(AggregationRun)
class AggregationRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "workflow", "mode", "reference_name", "status", "live", "created_at",
                    "n_classifications", "n_subjects"]
    list_filter = ["status", "mode", "live", "workflow"]
    readonly_fields = ["timings", "summary", "parameters", "error"]


@admin.register(SubjectPosterior)
class SubjectPosteriorAdmin(admin.ModelAdmin):
    list_display = ["run", "subject", "p_real", "label", "stable", "n_counted"]
    list_filter = ["label", "stable"]
    raw_id_fields = ["run", "subject"]


@admin.register(VolunteerSkill)
class VolunteerSkillAdmin(admin.ModelAdmin):
    list_display = ["run", "volunteer", "p_real", "p_bogus", "n_real_seen", "n_bogus_seen",
                    "contributes"]
    raw_id_fields = ["run", "volunteer"]


@admin.register(LabelSet)
class LabelSetAdmin(admin.ModelAdmin):
    """Read-only: a label set is immutable, and only an export creates one."""

    list_display = ["number", "run", "scenario", "n_subjects", "fine_tune_from", "created_by",
                    "created_at"]
    list_filter = ["scenario"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(LabelSetExport)
class LabelSetExportAdmin(admin.ModelAdmin):
    list_display = ["pk", "run", "status", "label_set", "fine_tune_from", "created_by",
                    "created_at", "finished_at"]
    list_filter = ["status"]
    raw_id_fields = ["run", "label_set"]
    readonly_fields = ["options", "error", "label_set", "started_at", "finished_at"]
