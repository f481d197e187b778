"""Login throttling (django-axes): thirty wrong admin passwords meet a lockout, which then
refuses even the right password; addresses are read through the trusted proxy."""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from labeling.client_ip import client_ip

PASSWORD = "a-long-and-correct-password"


@pytest.fixture
def admin(django_user_model, settings):
    # A fast hasher: the lockout, not the hashing, is under test.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return django_user_model.objects.create_superuser("admin", "admin@example.org", PASSWORD)


def _admin_login(client: Client, username: str, password: str, address: str):
    return client.post("/admin/login/?next=/admin/",
                       {"username": username, "password": password}, REMOTE_ADDR=address)


@pytest.mark.django_db
def test_thirty_wrong_admin_passwords_meet_a_lockout(admin, settings):
    client = Client()
    statuses = [_admin_login(client, "admin", f"guess-{i}", "203.0.113.7").status_code
                for i in range(30)]
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[:limit - 1] == [200] * (limit - 1)  # the form again, "wrong password"
    assert set(statuses[limit:]) == {429}
    # Locked out: the right password no longer signs in, from there or from elsewhere.
    for address in ("203.0.113.7", "198.51.100.9"):
        response = _admin_login(client, "admin", PASSWORD, address)
        assert response.status_code == 429
        assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_one_address_guessing_many_user_names_is_locked_out_others_are_not(admin, settings):
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        _admin_login(client, f"user-{i}", "guess", "203.0.113.7")
    assert _admin_login(client, "admin", PASSWORD, "203.0.113.7").status_code == 429
    signed_in = _admin_login(Client(), "admin", PASSWORD, "198.51.100.9")
    assert signed_in.status_code == 302  # to /admin/


@pytest.mark.parametrize(("proxies", "forwarded", "remote", "expected"), [
    (0, "", "10.0.0.1", "10.0.0.1"),
    (0, "198.51.100.9", "10.0.0.1", "10.0.0.1"),  # no proxy trusted: the header is the client's
    (1, "198.51.100.9", "10.0.0.1", "198.51.100.9"),
    (1, "6.6.6.6, 198.51.100.9", "10.0.0.1", "198.51.100.9"),  # a spoofed entry on the left
    (2, "6.6.6.6, 198.51.100.9, 10.0.0.2", "10.0.0.1", "198.51.100.9"),
    (1, "", "10.0.0.1", "10.0.0.1"),  # reached without the proxy
])
def test_the_client_address_is_read_through_the_trusted_proxies(settings, proxies, forwarded,
                                                                remote, expected):
    settings.TRUSTED_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected
