"""Who may open a page: one decorator for every role-restricted page of the platform."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied


def readers_only(may_read: Callable, refusal: str):
    """A view decorator: anonymous visitors are sent to sign in; signed-in users for whom
    `may_read(user)` is false get 403 with `refusal`, since signing in again would not help."""

    def decorate(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not may_read(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return guarded

    return decorate
