from django import forms
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.contrib.auth import get_user_model
from django.db.models import Count

from labeling import models, services


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


class ExpertTeamForm(forms.ModelForm):
    members = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.order_by("username"),
        required=False,
        widget=FilteredSelectMultiple("experts", is_stacked=False),
        help_text="the users who write this team's reference sets",
    )

    class Meta:
        model = models.ExpertTeam
        fields = ["name"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["members"].initial = self.instance.group.user_set.all()


@admin.register(models.ExpertTeam)
class ExpertTeamAdmin(admin.ModelAdmin):
    """Staff manage teams here: a new team gets its group; members are the group's users."""

    form = ExpertTeamForm
    list_display = ["name", "n_members"]
    search_fields = ["name"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_members=Count("group__user"))

    @admin.display(description="experts", ordering="n_members")
    def n_members(self, team):
        return team.n_members

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
        else:
            created = services.expert_team_get_or_create(obj.name)
            obj.pk, obj.group = created.pk, created.group

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.expert_team_members_set(team=form.instance,
                                         users=form.cleaned_data["members"])


@admin.register(models.ReferenceSet)
class ReferenceSetAdmin(admin.ModelAdmin):
    list_display = ["name", "team", "created_at"]
    list_filter = ["team"]


@admin.register(models.ReferenceLabel)
class ReferenceLabelAdmin(admin.ModelAdmin):
    list_display = ["subject", "reference_set", "label", "expert", "updated_at"]
    list_filter = ["reference_set", "label"]
    raw_id_fields = ["subject", "expert"]
    # Changes go through the services, which keep the history; the admin only reads.
    readonly_fields = [f.name for f in models.ReferenceLabel._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(models.ReferenceLabelChange)
class ReferenceLabelChangeAdmin(admin.ModelAdmin):
    list_display = ["subject", "reference_set", "old_label", "new_label", "expert", "source",
                    "changed_at"]
    list_filter = ["reference_set", "source", "new_label"]
    raw_id_fields = ["subject", "expert"]
    readonly_fields = [f.name for f in models.ReferenceLabelChange._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
