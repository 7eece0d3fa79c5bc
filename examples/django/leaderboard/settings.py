"""Settings of the leaderboard example: one app, SQLite, JSON only.

The database file is $LEADERBOARD_DB (scripts/demo-django.sh puts it in a
temporary directory). No static files, no templates, no sessions: the API
speaks JSON through Django REST framework.
"""
import os

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A demo key: set DJANGO_SECRET_KEY for anything that is not a local demo.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]  # in production: the public host, api.example.com

# Behind cacheproxy. The client's Host never reaches Django: cacheproxy
# sends Django's own address as Host, and the public host name (its
# -public-host) as X-Forwarded-Host. Build absolute URLs from the latter,
# or request.build_absolute_uri() -- DRF's hyperlinks and pagination --
# names the backend. Django checks it against ALLOWED_HOSTS.
USE_X_FORWARDED_HOST = True
# The scheme: cacheproxy sets X-Forwarded-Proto from its own client
# connection (a client's own value is dropped), so request.is_secure() is
# true only for "https" as cacheproxy saw it.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "rest_framework",
    "ranks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "leaderboard.urls"
WSGI_APPLICATION = "leaderboard.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("LEADERBOARD_DB", os.path.join(BASE_DIR, "leaderboard.sqlite3")),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True

REST_FRAMEWORK = {
    # JSON only: the browsable API would need templates and static files.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # An open demo API: no users, so no django.contrib.auth either.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "UNAUTHENTICATED_USER": None,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "WARNING"}},
}
