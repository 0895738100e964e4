"""What ``splitnet attack label-leak`` and ``splitnet attack invert`` are asked to do, checked."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from splitnet.bench.options import MAX_SEED
from splitnet.errors import ConfigError, Violation

__all__ = ["ATTACKS", "DEFAULT_CLIPS", "AttackOptions", "attack_options"]

ATTACKS = ("label-leak", "invert")
_DEFAULT_SIGMAS = {"label-leak": "0,0.5,1,2", "invert": "0,0.1,0.5,1"}
# Note: clip per attack. A sample's gradient at the cut (of the batch's mean loss) has an L2
# norm of about 1e-4..1e-2 here, its partition-1 activation about 10: one clip cannot bind
# both. With DP_CLIP's default 1.0 on gradients, noise of sigma x 1.0 per element swamps them
# and training diverges (0.05 diverges at sigma >= 1, 0.02 at sigma = 2 for some seeds); at
# 0.01 the noiseless model still learns. For activations, 10 is just below their norms.
DEFAULT_CLIPS = {"label-leak": 0.01, "invert": 10.0}
COMMAND_LINE = "the command line"
MAX_SIGMA = 1e6  # DP_NOISE_MULTIPLIER's bound; far above it the accountant overflows


@dataclass(frozen=True)
class AttackOptions:
    """One attack: which, the noise multipliers to try, the clip, the seed and the sizes.

    ``epochs`` trains the split model; ``decoder_epochs`` trains the inversion attacker's decoder.
    """

    attack: str
    out: Path
    sigmas: tuple[float, ...]
    clip: float
    seed: int = 42
    quick: bool = False
    epochs: int = 12
    decoder_epochs: int = 60

    @property
    def command(self) -> str:
        """Return the ``splitnet attack`` command line that repeats this run."""
        sigmas = ",".join(f"{s:g}" for s in self.sigmas)
        quick = " --quick" if self.quick else ""
        return (f"splitnet attack {self.attack}{quick} --seed {self.seed} --sigmas {sigmas} "
                f"--clip {self.clip:g} --out {self.out}")


def attack_options(attack: str, out: Path, *, sigmas: str | None = None,
                   clip: float | None = None, seed: int = 42, quick: bool = False) -> AttackOptions:
    """Return the options (``quick``: small sizes); raise every problem at once, named."""
    problems: list[Violation] = []
    if attack not in ATTACKS:
        problems.append(Violation("usage", f"attack {attack!r}: expected one of "
                                           f"{', '.join(ATTACKS)}"))
    text = sigmas if sigmas is not None else _DEFAULT_SIGMAS.get(attack, "0")
    values = _sigma_list(text, problems)
    clip = clip if clip is not None else DEFAULT_CLIPS.get(attack, 1.0)
    if not (math.isfinite(clip) and clip > 0):
        problems.append(Violation("usage", f"--clip {clip:g}: expected a positive number "
                                           "(the per-sample L2 bound, as DP_CLIP)"))
    if not 0 <= seed <= MAX_SEED:
        problems.append(Violation("usage", f"--seed {seed}: expected a whole number from 0 to "
                                           f"{MAX_SEED} (as SEED)"))
    if problems:
        raise ConfigError(problems, COMMAND_LINE)
    sizes = {"epochs": 5, "decoder_epochs": 30} if quick else {}
    return AttackOptions(attack=attack, out=out, sigmas=values, clip=clip, seed=seed,
                         quick=quick, **sizes)


def _sigma_list(text: str, problems: list[Violation]) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        values = ()
    if not values or any(not 0 <= v <= MAX_SIGMA for v in values):  # nan fails too
        problems.append(Violation("usage", f"--sigmas {text!r}: expected noise multipliers "
                                           f"from 0 to {MAX_SIGMA:g} (as DP_NOISE_MULTIPLIER) "
                                           "separated by commas, e.g. 0,0.5,1,2"))
        return ()
    if len(set(values)) != len(values):
        problems.append(Violation("usage", f"--sigmas {text!r}: a noise multiplier is "
                                           "listed twice"))
    return values
