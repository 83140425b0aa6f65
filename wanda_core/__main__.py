"""`python -m wanda_core ...`: see wanda_core/cli.py."""
import sys

from .cli import main

sys.exit(main())
