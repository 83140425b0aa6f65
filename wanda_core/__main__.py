"""`python -m wanda_core ...`: see wanda_core/cli.py."""
import sys

from wanda_core.cli import main

sys.exit(main())
