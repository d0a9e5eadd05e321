"""Black-box (multi-trial) search: strategies that query an evaluator one architecture at a time."""

from edgenas.search.blackbox.base import (BlackBoxStrategy, Problem, Trace, create_blackbox, list_blackbox,
                                          register_blackbox, run_blackbox)

__all__ = ["BlackBoxStrategy", "Problem", "Trace", "create_blackbox", "list_blackbox", "register_blackbox",
           "run_blackbox"]
