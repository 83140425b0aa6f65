"""`python -m wanda_core.gpu.speedup`: the 2:4 speed-up suite (see suite.py for the options)."""
from wanda_core.gpu.speedup.suite import main

main()
