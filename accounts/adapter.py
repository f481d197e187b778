"""django-allauth's hooks: every sign-in (password, after sign-up, after e-mail confirmation or
a password reset) merges the browser's anonymous answers into the account."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib import messages

from accounts import services


class AccountAdapter(DefaultAccountAdapter):
    def login(self, request, user) -> None:
        # Signing in gives the browser a new session key: remember the anonymous one first.
        anonymous_session = request.session.session_key
        super().login(request, user)
        report = services.volunteer_merge_session(user=user, session_key=anonymous_session)
        if report.moved:
            messages.info(request, _merge_message(report))


def _merge_message(report: services.MergeReport) -> str:
    text = f"The {report.moved} answer(s) you gave in this browser are now in your account."
    if report.uncounted:
        text += (f" You had answered {report.uncounted} of those subjects twice (once signed"
                 " in, once not): on each, your earlier answer is the one that counts.")
    return text
