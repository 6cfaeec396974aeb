"""Tenant names and bearer-token authentication."""

from __future__ import annotations

import pytest

from emberlake.errors import TenantError, Unauthenticated
from emberlake.settings import ReceiverSettings, Settings
from emberlake.tenancy import Authenticator, validate_tenant


@pytest.mark.parametrize("name", ["default", "acme", "team_42", "a" * 63])
def test_valid_tenant_names(name: str) -> None:
    assert validate_tenant(name) == name


@pytest.mark.parametrize(
    "name", ["", "Acme", "9lives", "a-b", "a.b", "a" * 64, "emberlake", "main"]
)
def test_invalid_tenant_names(name: str) -> None:
    with pytest.raises(TenantError):
        validate_tenant(name)


def test_auth_off_takes_the_header_or_the_default() -> None:
    auth = Authenticator.from_settings(Settings())
    assert not auth.enabled
    assert auth.tenant_for({}) == "default"
    assert auth.tenant_for({"x-emberlake-tenant": "acme"}) == "acme"
    with pytest.raises(TenantError):
        auth.tenant_for({"x-emberlake-tenant": "../etc"})


def test_auth_on_maps_tokens_to_tenants_only() -> None:
    auth = Authenticator.from_settings(
        Settings(receiver=ReceiverSettings(tokens="tokA=alpha,tokB=beta"))
    )
    assert auth.enabled
    assert auth.tenant_for({"authorization": "Bearer tokA"}) == "alpha"
    assert auth.tenant_for({"authorization": "bearer tokB", "x-emberlake-tenant": "beta"}) == "beta"
    with pytest.raises(Unauthenticated):
        auth.tenant_for({})
    with pytest.raises(Unauthenticated):
        auth.tenant_for({"authorization": "Bearer nope"})
    with pytest.raises(Unauthenticated):
        auth.tenant_for({"x-emberlake-tenant": "alpha"})
    with pytest.raises(TenantError, match="may not act for tenant 'beta'"):
        auth.tenant_for({"authorization": "Bearer tokA", "x-emberlake-tenant": "beta"})
