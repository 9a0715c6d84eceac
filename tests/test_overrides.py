from typing import Literal

import pytest

from winoground_eval.core import registry
from winoground_eval.core.errors import ConfigError
from winoground_eval.core.overrides import parse_overrides


def factory(
    spec: str,
    *,
    n_timesteps: int = 1000,
    scale: float = 1.0,
    loss: Literal["l2", "l1"] = "l2",
    compile: bool = False,
    dtype: str | None = None,
    t_range: tuple[int, int] | None = None,
):
    return None


def test_types_are_checked():
    import functools

    f = functools.partial(factory, "x")
    got = parse_overrides(
        f, ["n_timesteps=10", "scale=0.5", "loss=l1", "compile=true", "dtype=none", "t_range=100,500"], what="s"
    )
    assert got == {"n_timesteps": 10, "scale": 0.5, "loss": "l1", "compile": True, "dtype": None, "t_range": (100, 500)}


@pytest.mark.parametrize(
    "pair, match",
    [
        ("n_timesteps=ten", "expected int"),
        ("loss=l3", "choose one of l2, l1"),
        ("compile=maybe", "expected true or false"),
        ("t_range=1", "expected 2 comma-separated"),
        ("spec=y", "has no option 'spec'"),  # the bound positional part is not an option
        ("n_timestep=3", "Did you mean n_timesteps"),
    ],
)
def test_bad_overrides(pair, match):
    import functools

    with pytest.raises(ConfigError, match=match):
        parse_overrides(functools.partial(factory, "x"), [pair], what="s")


def test_registry_is_lazy_and_complete():
    # Every registered target names a module:attr; nothing is imported by listing.
    for table in (registry.TASKS, registry.SCORERS, registry.SCORER_PREFIXES):
        for name, entry in table.items():
            assert ":" in entry.target and entry.summary, name
    assert registry.SCORERS["sd2"].target.endswith(":sd2")


def test_unknown_names_list_close_matches():
    with pytest.raises(ConfigError, match="Did you mean 'clip-vit-l14'"):
        registry.resolve_scorer("clip-vit-l16")
    with pytest.raises(ConfigError, match="names nothing after 'diffusers:'"):
        registry.resolve_scorer("diffusers:")
