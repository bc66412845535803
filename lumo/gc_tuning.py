"""The garbage collector of a long-running process (`lumo serve`, `lumo worker`), set once its start-up is over.

A chat turn allocates tens of thousands of short-lived containers (LangGraph's channels and tasks, the SDK's
request, SQLAlchemy's rows), so with Python's default threshold (a young collection every 700 net allocations)
the collector ran ~0.7 times a turn, and each older collection walked every object the process had loaded:
~1.1 s of 500 turns' CPU in one worker under load (2 ms of a 10 ms turn; evals/perf/README.md). What start-up
loaded (modules, the compiled graph, the pools) lives as long as the process, so it is frozen out of every
collection, and the young generation is collected every YOUNG_THRESHOLD allocations. Garbage cycles are still
collected, a little later; the process holds at most a young generation's worth more. A `lumo worker` running
digests spent 3.0 s of 86 s CPU collecting (3,706 young collections in 100 s), 1.1 s once settled.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # Python's default is 700; measured: 6-7 young collections in 500 turns against 330


def settle() -> int:
    """Freeze what start-up allocated and collect the young generation less often. Once, after start-up;
    returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    return gc.get_freeze_count()
