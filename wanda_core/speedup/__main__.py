"""`python -m wanda_core.speedup`: the 2:4 speed-up suite (see suite.py for the options)."""
from .suite import main

main()
