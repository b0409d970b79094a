"""``python -m s3db_nb``: the ``s3db-nb`` command line (``s3db_nb.cli``)."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
