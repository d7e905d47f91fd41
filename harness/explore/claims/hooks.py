"""The claims world's hooks for the explorer (see :mod:`harness.explore.worlds`).

Heavy imports (the kubernetes client, the providers, the operator) happen inside the
functions: parsing a saved claims schedule must stay cheap.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from harness.errors import ReconvergeError
from harness.explore.claims import steps as C

if TYPE_CHECKING:
    from harness.explore.draws import DrawLog
    from harness.explore.engine import Options
    from harness.explore.result import Result
    from harness.explore.schedule import Schedule

STEPS = C.STEPS
validate_step = C.validate


def validate(options: Options) -> None:
    """An unknown claim-operator switch, a ``--faults`` prefix that matches nothing, or an
    option this world has no use for: one clear error before anything starts."""
    from harness.explore.claims import strategy
    from harness.reconciler.claims import bugs

    bugs.Bugs(options.bugs)  # raises ReconvergeError naming the known switches
    if options.sandboxes != 1:
        raise ReconvergeError(
            "--sandboxes is a sandbox-world option; the claims world always has claims "
            f"{', '.join(C.CLAIMS)} and claim set {C.SETS[0]} over {C.POOL} pool pods"
        )
    if not strategy.menu(options.faults, toxics=options.toxics) and options.faults:
        raise ReconvergeError(f"--faults {','.join(options.faults)} with --no-toxics: nothing left")


def strategy(options: Options, log: DrawLog) -> Any:
    """Schedules of claim, pod and fault steps with the chosen fault menu."""
    from harness.explore.claims import strategy as strat

    return strat.schedules(
        max_steps=options.max_steps,
        faults=strat.menu(options.faults, toxics=options.toxics),
        bugs=options.bugs,
        log=log,
    )


@contextlib.contextmanager
def runner(seed: int) -> Iterator[Callable[[Schedule, str], Result]]:
    """etcd + kube-apiserver + toxiproxy for the run; one namespace per schedule."""
    from harness.explore.claims.execute import Executor
    from harness.explore.claims.world import ClaimsWorld

    with ClaimsWorld(seed=seed) as world:

        def run(sched: Schedule, label: str) -> Result:
            with world.env(label) as env:
                return Executor(env, sched).run()

        yield run
