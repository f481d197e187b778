from django.contrib import admin

from aggregation.models import AggregationRun, SubjectPosterior, VolunteerSkill


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
