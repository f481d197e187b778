"""The address of the client behind a request, for per-client limits (login lockouts).

Behind TRUSTED_PROXY_COUNT reverse proxies (1 in docker-compose: nginx), REMOTE_ADDR is the
nearest proxy's address, the same for every client. Each proxy appends the address it was
reached from to X-Forwarded-For, so the client is the entry that many places from the right;
entries further left were written by the client and prove nothing.
"""

from __future__ import annotations

from django.conf import settings


def client_ip(request) -> str | None:
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [part.strip() for part in
                     request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR")
