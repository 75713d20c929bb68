"""Sign-in pages: the sign-in form (passwords and/or single sign-on), the lockout
answer, the page for a person with no role, and sign-out."""

from __future__ import annotations

from axes.helpers import get_cool_off
from django.conf import settings
from django.contrib import admin, auth
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.views.decorators.http import require_POST

from apps.accounts.oidc_auth import provider_logout_url, provider_name, sso_groups
from apps.accounts.roles import user_roles

PASSWORDS_OFF_MESSAGE = (
    "Password sign-in is switched off on this Slipway; use the single sign-on button."
)


def _signin_context() -> dict:
    return {
        "oidc_enabled": settings.OIDC_ENABLED,
        "oidc_provider_name": provider_name(),
        "local_passwords": settings.SLIPWAY_LOCAL_PASSWORDS,
    }


class SignInView(auth_views.LoginView):
    """Django's LoginView, plus the SSO button; refuses password posts when local
    passwords are switched off (the password backend is not installed then either)."""

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), **_signin_context()}

    def post(self, request, *args, **kwargs):
        if not settings.SLIPWAY_LOCAL_PASSWORDS:
            context = {**_signin_context(), "refused": PASSWORDS_OFF_MESSAGE}
            return render(request, "registration/login.html", context, status=403)
        return super().post(request, *args, **kwargs)


def admin_login(request, extra_context=None):
    """The admin's own password form, unless passwords are off: then the sign-in page."""
    if not settings.SLIPWAY_LOCAL_PASSWORDS:
        return HttpResponseRedirect(resolve_url(settings.LOGIN_URL))
    return admin.site.login(request, extra_context)


def locked_out(request, original_response=None, credentials=None):
    """django-axes' lockout answer (AXES_LOCKOUT_CALLABLE): the sign-in page saying the
    account is locked from this address and for how long, with status 429."""
    cool_off = get_cool_off(request)
    minutes = int(cool_off.total_seconds() // 60) if cool_off else None
    unlock = "or ask an admin to unlock it."
    if minutes:
        until = f"Try again in {minutes} minute{'s' if minutes != 1 else ''}, {unlock}"
    elif cool_off:
        until = f"Try again in {int(cool_off.total_seconds())} seconds, {unlock}"
    else:
        until = "An admin must unlock it (Admin > Sign-in lockouts)."
    message = (
        "Too many failed sign-ins for this username from your address: sign-in is locked. " + until
    )
    context = {**_signin_context(), "locked": message}
    return render(request, "registration/login.html", context, status=429)


def lockout_username(request, credentials=None) -> str | None:
    """The username django-axes counts failures for (AXES_USERNAME_CALLABLE): what was
    typed, cut to Django's 150 characters. Uncut, a long one overflowed axes' column: a
    500 instead of a failed sign-in."""
    field = settings.AXES_USERNAME_FORM_FIELD
    value = (credentials or {}).get(field) if credentials else request.POST.get(field)
    return str(value)[:150] if value is not None else None


@login_required
def no_role(request):
    """After SSO: signed in, but no group the provider sent maps to a Slipway role."""
    if user_roles(request.user):
        return HttpResponseRedirect(resolve_url(settings.LOGIN_REDIRECT_URL))
    context = {"groups": sso_groups(request), "provider": provider_name()}
    return render(request, "accounts/no_role.html", context, status=403)


@require_POST
def sign_out(request):
    """Sign out here and, for an SSO session, at the provider (RP-initiated logout)."""
    url = provider_logout_url(request)
    auth.logout(request)
    return HttpResponseRedirect(url)
