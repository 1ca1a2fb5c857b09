"""``python -m internet_plus.compare``: runs :func:`.cli.main`."""

from internet_plus.compare.cli import main

raise SystemExit(main())
