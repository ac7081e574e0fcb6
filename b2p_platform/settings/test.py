"""Test settings: fast hashers and in-memory email; everything else as in production."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")

from b2p_platform.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Test runs share the machine's Redis with nothing else of ours; a queue of their own keeps
# messages left by one run from reaching the worker of another.
CELERY_TASK_DEFAULT_QUEUE = "b2p-test"
CACHES["default"]["KEY_PREFIX"] = "b2p-test"  # noqa: F405
