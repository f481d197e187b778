from rest_framework.permissions import BasePermission

from labeling import roles


class CanSeeSubjectTruth(BasePermission):
    message = "Only staff, experts and the ML team see a subject's origin, scores and metadata."

    def has_permission(self, request, view):
        return roles.can_see_subject_truth(request.user)


class CanReadReferenceLabels(BasePermission):
    message = "Reference labels are for staff and experts."

    def has_permission(self, request, view):
        return roles.can_read_reference_labels(request.user)


class IsStaff(BasePermission):
    message = "Only staff manage expert teams."

    def has_permission(self, request, view):
        return bool(request.user.is_authenticated and request.user.is_staff)
