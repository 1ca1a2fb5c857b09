"""``python -m internet_plus.tools.gpu_check`` (``make gpu-check``): runs :func:`.cli.main`."""

from internet_plus.tools.gpu_check.cli import main

raise SystemExit(main())
