"""Targets named by a string: built-in names, ``module:Name`` and ``file.py:Name``, with
``--param`` values; every mistake a ValueError that says what to fix."""

from __future__ import annotations

import sys
import textwrap

import pytest

from uqmcmc.targets import LJCluster, Phi4
from uqmcmc.targets.loading import load_target, parse_params

OWN = textwrap.dedent(
    """
    import jax.numpy as jnp

    class Spring:
        def __init__(self, k=1.0):
            self.k = k
        def action(self, x):
            return 0.5 * self.k * jnp.sum(x**2)
        def grad(self, x):
            return self.k * x

    def make_spring(k=2.0):
        return Spring(k)

    SPRING = Spring(3.0)

    class NoGrad:
        def action(self, x):
            return jnp.sum(x**2)
    """
)


@pytest.fixture
def own_module(user_module):
    return user_module("own_targets", OWN)


def test_builtin_names_with_params():
    assert load_target("phi4", {"L": 4, "beta": 0.5, "g": 1.0}).params == Phi4(4, 0.5, 1.0).params
    assert load_target("lj", {"temperature": 0.5, "d": 2}) == LJCluster(d=2, temperature=0.5)


def test_module_class_function_and_instance(own_module):
    assert load_target(f"{own_module}:Spring", {"k": 4.0}).k == 4.0
    assert load_target(f"{own_module}:make_spring", {}).k == 2.0
    assert load_target(f"{own_module}:SPRING").k == 3.0


def test_file_path(tmp_path):
    path = tmp_path / "elsewhere.py"
    path.write_text(OWN)
    assert load_target(f"{path}:Spring", {"k": 5.0}).k == 5.0


@pytest.mark.parametrize(
    "spec, params, message",
    [
        ("nonsense", {}, "unknown target 'nonsense'"),
        ("no_such_module_xyz:Thing", {}, "cannot be imported: no module 'no_such_module_xyz'"),
        ("{m}:Missing", {}, "has no 'Missing'"),
        ("{m}:Spring", {"kk": 1.0}, "does not take parameter 'kk'; it takes k"),
        ("{m}:SPRING", {"k": 1.0}, "is an object, not a class"),
        ("{m}:NoGrad", {}, "has no callable `grad`"),
        ("lj", {"N": 1}, "N must be an integer >= 2"),
        ("missing_file.py:Spring", {}, "does not exist"),
    ],
)
def test_mistakes_are_named(own_module, spec, params, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("`", ".")):
        load_target(spec.format(m=own_module), params)


def test_parse_params_reads_toml_values():
    assert parse_params(["a=1", "b=0.5", "c=true", 'd="x"', "e=word", "f=[1, 2]"]) == {
        "a": 1, "b": 0.5, "c": True, "d": "x", "e": "word", "f": [1, 2],
    }  # fmt: skip
    assert parse_params(["a=False", "b=True", "c=path/to/x.npz"]) == {
        "a": False, "b": True, "c": "path/to/x.npz",
    }  # fmt: skip
    for bad in (["=1"], ["a"], ["a=1", "a=2"], ["1a=2"], ["a=.5"], ["a=None"], ["a=1 2"]):
        with pytest.raises(ValueError, match="--param"):
            parse_params(bad)


def test_a_file_with_dataclasses_and_a_sibling_import(tmp_path):
    """A target file is a module like any other: dataclasses with postponed annotations work,
    and it imports the modules beside it; the import path is left as it was."""
    (tmp_path / "helpers.py").write_text("SCALE = 2.0\n")
    (tmp_path / "dc_target.py").write_text(textwrap.dedent(
        """
        from __future__ import annotations
        from dataclasses import dataclass
        import jax.numpy as jnp
        from helpers import SCALE

        @dataclass
        class Bowl:
            k: float = 1.0
            def action(self, x):
                return 0.5 * SCALE * self.k * jnp.sum(x**2)
            def grad(self, x):
                return SCALE * self.k * x
        """
    ))  # fmt: skip
    before = list(sys.path)
    try:
        assert load_target(f"{tmp_path / 'dc_target.py'}:Bowl", {"k": 3.0}).k == 3.0
    finally:
        sys.modules.pop("helpers", None)
    assert sys.path == before


def test_a_class_without_grad_is_refused_before_it_is_built(user_module):
    name = user_module("noisy", textwrap.dedent(
        """
        BUILT = []
        class Half:
            def __init__(self):
                BUILT.append(1)
            def action(self, x):
                return x.sum()
        """
    ))  # fmt: skip
    with pytest.raises(ValueError, match="class Half has no callable `grad`"):
        load_target(f"{name}:Half")
    assert sys.modules[name].BUILT == []


def test_import_errors_inside_the_users_module_are_named(user_module):
    name = user_module("broken", "import no_such_dependency_xyz\n")
    with pytest.raises(ValueError, match="'broken' fails to import: ModuleNotFoundError"):
        load_target(f"{name}:Anything")
