"""Minimal Django project whose cache is a Granary server.

The test fixture starts the server and passes its port in GRANARY_PORT.
"""

import os

GRANARY_PORT = int(os.environ["GRANARY_PORT"])

SECRET_KEY = "granary-test-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
ROOT_URLCONF = "django_app.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {}
USE_TZ = True

CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": f"redis://127.0.0.1:{GRANARY_PORT}/1",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }
}
