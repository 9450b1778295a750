"""Every public function and class has a docstring with a runnable example.

The examples themselves run as doctests (``--doctest-modules`` over ``uqmcmc`` in the pytest
configuration); this test makes sure none is missing and none is skipped.
"""

import importlib
import inspect
import pkgutil

import pytest

import uqmcmc


def _public_modules():
    for info in pkgutil.walk_packages(uqmcmc.__path__, "uqmcmc."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            yield importlib.import_module(info.name)


def _public_objects():
    for module in _public_modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) == module.__name__:
                yield f"{module.__name__}.{name}", obj


OBJECTS = dict(_public_objects())


def test_public_objects_are_found():
    assert "uqmcmc.mcmc.driver.run_chains" in OBJECTS
    assert "uqmcmc.uq.ensemble.DeepEnsemble" in OBJECTS
    assert len(OBJECTS) > 50


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_has_runnable_example(name):
    doc = inspect.getdoc(OBJECTS[name]) or ""
    assert "Examples" in doc and ">>>" in doc, f"{name} has no Examples section with >>> lines"
    assert "doctest: +SKIP" not in doc, f"{name} skips its example"
