"""Transitional: the names chapter 09 and the course notebooks still import from the old
`wanda_core.report`, now in wanda_core.present and wanda_core.paper. Removed once those notebooks
import present/paper directly; do not use in new code."""
from .paper import numbers as paper_numbers  # noqa: F401
from .present import METHOD_LABEL, how_made, md, style, table  # noqa: F401
