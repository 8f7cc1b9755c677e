"""The package's layers, read from the source with `ast` (function-level imports included, not only the top):
`cli/` is the top layer that nothing else imports, and only `ros/` touches rclpy or ROS message packages."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from itertools import chain
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "depth_panoptic_ros"
ROS_MODULES = {"rclpy", "rosbag2_py", "message_filters", "tf2_ros", "tf2_py", "cv_bridge", "rosidl_runtime_py"}
ROS_SUFFIXES = ("_msgs", "_srvs", "_actions", "_interfaces")  # sensor_msgs, rcl_interfaces, ...


def imported_modules(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every import in ``source`` (the module ``module``): statements at any depth,
    relative ones resolved, ``from a import b`` as ``a.b`` too, and importlib.import_module / __import__ of a
    constant name."""
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            yield node.lineno, base
            yield from ((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def names_used(source: str) -> Iterator[tuple[int, str]]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr


def is_cli(module: str) -> bool:
    return module == "depth_panoptic_ros.cli" or module.startswith("depth_panoptic_ros.cli.")


def is_ros(module: str) -> bool:
    top = module.split(".")[0]
    own_messages = module == "depth_panoptic_ros.msg" or module.startswith("depth_panoptic_ros.msg.")
    return top in ROS_MODULES or top.endswith(ROS_SUFFIXES) or own_messages


def first_per_line(found: Iterator[tuple[int, str]]) -> list[str]:
    """One entry per offending line (``from a import b`` yields both ``a`` and ``a.b``)."""
    lines: dict[int, str] = {}
    for line, what in found:
        lines.setdefault(line, what)
    return [f"{line}: {what}" for line, what in sorted(lines.items())]


def cli_violations(source: str, module: str) -> list[str]:
    imports = ((line, f"imports {name}") for line, name in imported_modules(source, module) if is_cli(name))
    errors = ((line, "uses CliError") for line, name in names_used(source) if name == "CliError")
    return first_per_line(chain(imports, errors))


def ros_violations(source: str, module: str) -> list[str]:
    return first_per_line((line, f"imports {name}") for line, name in imported_modules(source, module) if is_ros(name))


def package_modules(outside: str) -> Iterator[tuple[str, str]]:
    """(dotted name, source) of every module of the package outside its subpackage ``outside``."""
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        if relative.parts[1] == outside:
            continue
        parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
        yield ".".join(parts), path.read_text()


def test_nothing_outside_cli_imports_the_cli_or_raises_its_error() -> None:
    found = {m: v for m, source in package_modules("cli") if (v := cli_violations(source, m))}
    assert found == {}


def test_only_ros_imports_rclpy_or_ros_messages() -> None:
    found = {m: v for m, source in package_modules("ros") if (v := ros_violations(source, m))}
    assert found == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    import rclpy.node\n", ["2: imports rclpy.node"]),
        ("def f():\n    from sensor_msgs.msg import Image\n", ["2: imports sensor_msgs.msg"]),
        ("from depth_panoptic_ros import msg\n", ["1: imports depth_panoptic_ros.msg"]),
        ("from ..msg import ClassTable\n", ["1: imports depth_panoptic_ros.msg"]),
        ("import importlib\nimportlib.import_module('rcl_interfaces.msg')\n", ["2: imports rcl_interfaces.msg"]),
        ("import numpy\nfrom depth_panoptic_ros.pipeline import Pipeline\n", []),
    ],
)
def test_the_ros_check_finds_lazy_relative_and_dynamic_imports(source: str, expected: list[str]) -> None:
    assert ros_violations(source, "depth_panoptic_ros.training.loop") == expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    from depth_panoptic_ros.cli.pq import run\n", ["2: imports depth_panoptic_ros.cli.pq"]),
        ("from depth_panoptic_ros import cli\n", ["1: imports depth_panoptic_ros.cli"]),
        ("from .. import cli\n", ["1: imports depth_panoptic_ros.cli"]),
        ("def f(e):\n    raise e.CliError('x')\n", ["2: uses CliError"]),
        ("from depth_panoptic_ros import classes\n", []),
    ],
)
def test_the_cli_check_finds_every_form_of_import(source: str, expected: list[str]) -> None:
    assert cli_violations(source, "depth_panoptic_ros.training.loop") == expected
