from django.contrib import admin

from labeling import models


@admin.register(models.Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]


@admin.register(models.Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ["slug", "project", "active", "retire_agree", "retire_max", "created_at"]
    list_filter = ["active", "project"]
    search_fields = ["slug"]
    filter_horizontal = ["subject_sets"]


@admin.register(models.SubjectSet)
class SubjectSetAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    list_filter = ["project"]


@admin.register(models.Subject)
class SubjectAdmin(admin.ModelAdmin):
    list_display = ["external_id", "subject_set", "origin", "snr", "band", "reliability"]
    list_filter = ["origin", "band", "subject_set"]
    search_fields = ["external_id"]
    readonly_fields = ["stamps", "stamp_size", "original_shapes", "source", "created_at"]


@admin.register(models.SubjectWorkflowStatus)
class SubjectWorkflowStatusAdmin(admin.ModelAdmin):
    list_display = ["subject", "workflow", "n_counted", "retired", "retired_at", "priority"]
    list_filter = ["retired", "workflow"]
    raw_id_fields = ["subject"]
    # Counts and retirement change only through the classification service.
    readonly_fields = ["n_counted", "first_answer", "unanimous", "retired", "retired_at"]


@admin.register(models.Volunteer)
class VolunteerAdmin(admin.ModelAdmin):
    list_display = ["pk", "user", "external_name", "created_at"]
    search_fields = ["user__username", "external_name"]
    raw_id_fields = ["user"]


@admin.register(models.Classification)
class ClassificationAdmin(admin.ModelAdmin):
    list_display = ["pk", "volunteer", "subject", "workflow", "answer", "counted",
                    "not_counted_reason", "created_at"]
    list_filter = ["workflow", "answer", "counted", "not_counted_reason"]
    raw_id_fields = ["volunteer", "subject"]
    # Classifications are the record of what volunteers said: never edited after the fact.
    readonly_fields = [f.name for f in models.Classification._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(models.ExpertTeam)
class ExpertTeamAdmin(admin.ModelAdmin):
    list_display = ["name", "group"]


@admin.register(models.ReferenceSet)
class ReferenceSetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "created_at"]
    list_filter = ["team"]


@admin.register(models.ReferenceLabel)
class ReferenceLabelAdmin(admin.ModelAdmin):
    list_display = ["subject", "reference_set", "label", "expert", "created_at"]
    list_filter = ["reference_set", "label"]
    raw_id_fields = ["subject", "expert"]
