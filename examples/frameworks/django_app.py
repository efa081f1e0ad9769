"""Django: the LOGGING setting, and a middleware that identifies the signed-in user.

Run: ``python examples/frameworks/django_app.py``

A one-file Django project: ``LOGGING`` and ``MIDDLEWARE`` below go in your settings.py,
``OdpUserMiddleware`` in your code. The script signs a user in with Django's test client,
checks out, and shows the ODP events that arrived (see ``_local.py`` for where they go).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import django
from _local import odp_destination, report
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

import odp_logging

# settings.py -------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        # Key and host from ODP_API_KEY / ODP_API_HOST; any client option may go here too.
        "odp": {"class": "odp_logging.OdpHandler", "level": "INFO"},
    },
    "loggers": {
        "shop": {"handlers": ["odp"], "level": "INFO"},
    },
}

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    f"{__name__}.OdpUserMiddleware",  # after AuthenticationMiddleware, which sets request.user
]


# middleware.py -----------------------------------------------------------------------


class OdpUserMiddleware:
    """Adds the signed-in user's identifiers to every ODP event logged during the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return self.get_response(request)
        identifiers = {"fs_user_id": str(user.pk), "email": user.email}
        with odp_logging.context(identifiers=identifiers):
            return self.get_response(request)


# views.py ----------------------------------------------------------------------------

log = logging.getLogger("shop")


@login_required
def checkout(request: HttpRequest) -> JsonResponse:
    """Place an order; the middleware supplies who placed it."""
    item, price = request.POST["item"], float(request.POST["price"])
    log.info("purchased", extra={"odp": {"data": {"item": item, "price": price}}})
    return JsonResponse({"ok": True})


urlpatterns = [path("checkout/", checkout)]


# -------------------------------------------------------------------------------------


def main() -> None:
    """Sign a user in, check out (and once anonymously), and show what arrived."""
    settings.configure(
        SECRET_KEY="example-only-not-secret",
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["testserver"],
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
        ],
        MIDDLEWARE=MIDDLEWARE,
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        LOGGING=LOGGING,
    )
    with odp_destination() as receiver:
        django.setup()  # applies LOGGING: builds the OdpHandler from the ODP_* variables
        from django.contrib.auth.models import User
        from django.core.management import call_command
        from django.test import Client

        call_command("migrate", verbosity=0)
        user = User.objects.create_user("ada", email="ada@example.com")
        signed_in = Client()
        signed_in.force_login(user)
        signed_in.post("/checkout/", {"item": "shirt", "price": "50"})
        Client().post("/checkout/", {"item": "hat", "price": "20"})  # redirected to log in
        odp_logging.get_client().flush()  # the shared client behind the handler
        report(receiver)


if __name__ == "__main__":
    main()
