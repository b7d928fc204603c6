"""The CLI called in this process as the hostile-input tests call it (test_fuzz_received,
test_received_links), with what a user can act on checked: an allowed exit status, no traceback,
an error in one line. Their received folder is conftest's ``received``."""

from __future__ import annotations

import contextlib
import io

from raysim.cli import main

def cli(*argv) -> tuple[int, str]:
    """main's exit code and stderr; argparse's own usage errors exit 2 through SystemExit."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


def clear(code: int, err: str, allowed=(0, 1, 2)) -> None:
    """An answer a user can act on: an allowed status, no traceback, and an error said in one line."""
    assert code in allowed, err
    assert "Traceback" not in err, err
    if code == 2:
        assert err.startswith("error:"), err
