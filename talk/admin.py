"""Talk moderation in /admin/: hide or show comments, close bad-image reports."""

from django.contrib import admin

from talk import services
from talk.models import BadImageReport, Comment


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ["pk", "subject", "author", "by_expert", "hidden", "created_at", "body"]
    list_filter = ["hidden", "by_expert"]
    search_fields = ["body", "author__username"]
    raw_id_fields = ["subject", "author", "hidden_by"]
    actions = ["hide", "show"]

    @admin.action(description="Hide the selected comments from their threads")
    def hide(self, request, queryset):
        services.comments_moderate(comment_ids=queryset.values_list("pk", flat=True),
                                   staff_user=request.user, hidden=True)

    @admin.action(description="Show the selected comments again")
    def show(self, request, queryset):
        services.comments_moderate(comment_ids=queryset.values_list("pk", flat=True),
                                   staff_user=request.user, hidden=False)


@admin.register(BadImageReport)
class BadImageReportAdmin(admin.ModelAdmin):
    list_display = ["pk", "subject", "reporter", "note", "resolved", "created_at"]
    list_filter = ["resolved"]
    raw_id_fields = ["subject", "reporter"]
    actions = ["resolve"]

    @admin.action(description="Close the selected reports (the subjects leave the reported queue)")
    def resolve(self, request, queryset):
        queryset.update(resolved=True)
