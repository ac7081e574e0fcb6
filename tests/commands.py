"""Running management commands in tests the way the shell runs them."""

from __future__ import annotations

import io

import pytest
from django.db import connections


def run_import_csv(*args: str) -> tuple[int, str]:
    """`manage.py import_csv ARGS`: (exit status, output). The real exit path (run_from_argv turns
    a CommandError into exit status 1), minus its closing of the database connections, which the
    test still needs."""
    from customers.management.commands.import_csv import Command

    out, err = io.StringIO(), io.StringIO()
    command = Command(stdout=out, stderr=err)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(connections, "close_all", lambda: None)
        try:
            command.run_from_argv(["manage.py", "import_csv", *args])
        except SystemExit as exc:
            return int(exc.code or 0), out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()
