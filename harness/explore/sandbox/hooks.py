"""The sandbox world's hooks for the explorer (see :mod:`harness.explore.worlds`).

Heavy imports (grpc, the providers, the suites' sandbox fixtures) happen inside the
functions: parsing a saved sandbox schedule must stay cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from harness.explore import schedule as S

if TYPE_CHECKING:
    from harness.explore.draws import DrawLog
    from harness.explore.engine import Options
    from harness.explore.result import Result

STEPS = S.STEPS
validate_step = S.validate


def validate(options: Options) -> None:
    """An unknown bug switch or a ``--faults`` prefix that matches nothing: one error."""
    from harness.explore.sandbox import strategy
    from harness.reconciler.sandbox import bugs

    bugs.validate(options.bugs)
    strategy.menu(options.faults)


def strategy(options: Options, log: DrawLog) -> Any:
    """Schedules over ``options.sandboxes`` sandboxes with the chosen fault menu."""
    from harness.explore.sandbox import strategy as strat

    return strat.schedules(
        max_steps=options.max_steps,
        sandboxes=options.sandboxes,
        faults=strat.menu(options.faults),
        toxics=options.toxics,
        bugs=options.bugs,
        log=log,
    )


@contextlib.contextmanager
def runner(seed: int) -> Iterator[Callable[[S.Schedule, str], Result]]:
    """containerd + the stub + toxiproxy for the run; one ``SandboxEnv`` per schedule."""
    from harness.explore.sandbox.execute import Executor
    from harness.explore.sandbox.world import SandboxWorld

    with SandboxWorld(seed=seed) as world:

        def run(sched: S.Schedule, label: str) -> Result:
            with world.env(label) as env:
                return Executor(env, sched).run()

        yield run
