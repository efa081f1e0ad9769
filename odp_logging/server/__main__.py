"""`python -m odp_logging.server`: run the local ODP receiver in the foreground."""

from odp_logging.server._cli import main

raise SystemExit(main())
