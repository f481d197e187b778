"""A volunteer's own page, and deleting their account."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts import selectors, services


@require_GET
@login_required
def volunteer_page(request):
    return render(request, "accounts/volunteer.html",
                  {"record": selectors.volunteer_record(request.user)})


@require_http_methods(["GET", "POST"])
@login_required
def account_delete(request):
    """GET asks for confirmation; POST with `confirm` deletes the account and signs out."""
    if request.method == "POST":
        if request.POST.get("confirm") != "yes":
            return render(request, "accounts/delete.html", {
                "error": "Tick the box to confirm that the account should be deleted.",
            }, status=400)
        services.account_delete(request.user)
        logout(request)
        messages.info(request, "Your account is deleted. Your answers stay, anonymised.")
        return redirect("home")
    return render(request, "accounts/delete.html", {})
