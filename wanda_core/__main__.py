"""`python -m wanda_core ...`: see wanda_core/runs/cli.py."""
import sys

from wanda_core.runs.cli import main

sys.exit(main())
