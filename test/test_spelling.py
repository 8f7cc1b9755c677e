"""Names use American spelling (color, organized, normalize, center, meter, ...), as ROS, PCL and OpenCV do: every
identifier of the package (read with `ast`) and every key of the shipped YAML files. The old spellings that are
still read for one release are string constants (typed_config.RENAMED_KEYS, ros parameters RENAMED, model
RENAMED_WEIGHTS), which this check does not look at."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BRITISH = re.compile(
    r"colour|organis|normalis|visualis|initialis|serialis|optimis|synchronis|vectoris|binaris|quantis|behaviour"
    r"|honour|neighbour|centre|metre|labell|grey|tyre|kerb",
    re.IGNORECASE,
)


def identifiers(source: str) -> Iterator[tuple[int, str]]:
    """(line, name) of every name the code defines or uses: variables, attributes, functions, classes,
    arguments, keywords and imported names."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.lineno, node.name
        elif isinstance(node, ast.arg):
            yield node.lineno, node.arg
        elif isinstance(node, ast.keyword) and node.arg:
            yield node.value.lineno, node.arg
        elif isinstance(node, ast.alias):
            yield node.lineno, node.asname or node.name


def british_identifiers(source: str) -> list[str]:
    return [f"{line}: {name}" for line, name in identifiers(source) if BRITISH.search(name)]


def yaml_keys(tree: object, prefix: str = "") -> Iterator[str]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield f"{prefix}{key}"
            yield from yaml_keys(value, f"{prefix}{key}.")


def test_every_identifier_of_the_package_and_its_tests_is_american() -> None:
    sources = [*sorted((REPO / "depth_panoptic_ros").rglob("*.py")), *sorted((REPO / "test").glob("*.py"))]
    found = {str(p.relative_to(REPO)): v for p in sources if (v := british_identifiers(p.read_text()))}
    assert found == {}


def test_every_key_of_the_shipped_yaml_files_is_american() -> None:
    found = {
        path.name: [key for key in yaml_keys(yaml.safe_load(path.read_text())) if BRITISH.search(key)]
        for path in sorted((REPO / "config").glob("*.yaml"))
    }
    assert {name: keys for name, keys in found.items() if keys} == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def colourize(image):\n    pass\n", ["1: colourize"]),
        ("x = cloud.organised\n", ["1: organised"]),
        ("f(normalise=True)\n", ["1: normalise"]),
        ("def f(grey_left):\n    pass\n", ["1: grey_left"]),
        ("key = 'organised'  # the old spelling, read for one release\n", []),
        ("color = center = meter = organized\n", []),
    ],
)
def test_the_check_finds_british_names_and_leaves_strings_alone(source: str, expected: list[str]) -> None:
    assert british_identifiers(source) == expected
