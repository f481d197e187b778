"""The model registry in /admin/: versions, evaluations, training and scoring jobs, scores.

Registered for inspection and for staff to correct a record by hand; training, scoring and
evaluating are done by the services (the pages' buttons, the API, the commands), never here,
so the large JSON fields are read-only and scores are never edited."""

from django.contrib import admin

from training.models import Evaluation, ModelVersion, ScoringJob, SubjectScore, TrainingJob


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "parent", "label_set", "best_epoch", "device", "created_by",
                    "created_at"]
    list_filter = ["device"]
    search_fields = ["name", "notes"]
    raw_id_fields = ["parent", "label_set", "created_by"]
    readonly_fields = ["options", "history", "weights_path", "weights_sha256", "onnx_path",
                       "onnx_sha256", "onnx_max_difference"]


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ["model_version", "label_set", "created_at"]
    raw_id_fields = ["model_version", "label_set"]
    readonly_fields = ["metrics"]


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "name", "label_set", "parent", "status", "trigger", "epoch",
                    "created_by", "created_at", "finished_at"]
    list_filter = ["status", "trigger"]
    search_fields = ["name", "error"]
    raw_id_fields = ["label_set", "parent", "model_version", "created_by"]
    readonly_fields = ["options", "history", "heartbeat_at", "batches_done", "batches_total"]


@admin.register(ScoringJob)
class ScoringJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "model_version", "subject_set", "status", "n_done", "n_total",
                    "created_by", "created_at", "finished_at"]
    list_filter = ["status"]
    raw_id_fields = ["model_version", "subject_set", "created_by"]


@admin.register(SubjectScore)
class SubjectScoreAdmin(admin.ModelAdmin):
    list_display = ["subject", "model_version", "reliability"]
    list_filter = ["model_version"]
    raw_id_fields = ["subject", "model_version"]

    def has_change_permission(self, request, obj=None):
        # A score is what a version computed; changing one by hand would be a forged result.
        return False
