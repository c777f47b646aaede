"""Contracts between the node, its parameter file, the README and the launch
file (checked without `launch`, which is not installable here: the launch
file is read as Python source)."""

from __future__ import annotations

import ast
import re

import pytest
import rclpy
import yaml

from anyref_ros.nodes.anyref import AnyRefNode
from anyref_ros.parameters import PARAMS
from testsupport import REPO


@pytest.fixture
def configured_node(ros_context):
    node = AnyRefNode(context=ros_context)
    node.trigger_configure()
    yield node
    node.destroy_node()


def test_every_parameter_is_declared_with_a_description(configured_node):
    for p in PARAMS:
        assert configured_node.has_parameter(p.name)
        assert configured_node.get_parameter(p.name).value == p.default
        (descriptor,) = configured_node.describe_parameters([p.name])
        assert descriptor.description.startswith(p.description)
        if p.range is not None and not isinstance(p.default, bool):
            assert descriptor.integer_range or descriptor.floating_point_range, p.name


def test_params_file_lists_every_parameter_with_its_default():
    data = yaml.safe_load((REPO / "config" / "anyref.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert values == {p.name: p.default for p in PARAMS}


def test_readme_table_documents_every_parameter():
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| `([^`]*)` \|", readme, flags=re.M))
    for p in PARAMS:
        assert p.name in rows, f"README parameter table misses {p.name}"
        default = str(p.default).lower() if isinstance(p.default, bool) else str(p.default)
        assert rows[p.name] == default, f"README default of {p.name}: {rows[p.name]} != {default}"


def _launch_tree():
    return ast.parse((REPO / "launch" / "anyref.launch.py").read_text())


def _node_call(tree) -> ast.Call:
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Node"]
    assert len(calls) == 1
    return calls[0]


def test_launch_file_matches_the_node(configured_node):
    tree = _launch_tree()
    node = _node_call(tree)
    kw = {k.arg: k.value for k in node.keywords}
    assert ast.literal_eval(kw["package"]) == "anyref_ros"
    assert ast.literal_eval(kw["name"]) == configured_node.get_name()

    executable = ast.literal_eval(kw["executable"])
    setup_py = (REPO / "setup.py").read_text()
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert re.search(rf'"{executable} = anyref_ros\.nodes\.anyref:main"', setup_py)
    assert f'"{executable}=anyref_ros.nodes.anyref:main"' in cmake
    package_xml = (REPO / "package.xml").read_text()
    assert "<name>anyref_ros</name>" in package_xml

    # Parameters overridden by launch arguments exist on the node.
    overrides = [d for d in ast.walk(kw["parameters"]) if isinstance(d, ast.Dict)]
    names = {ast.literal_eval(k) for d in overrides for k in d.keys}
    assert names and names <= {p.name for p in PARAMS}

    # Remapped names are the node's own topics.
    topics = {s.topic_name for s in configured_node.subscriptions}
    for pair in kw["remappings"].elts:
        source = ast.literal_eval(pair.elts[0])
        assert "/" + source in topics or any(t.endswith("/" + source) for t in topics) or source == "image/compressed", source

    # The arguments the issue asks for, each with a description.
    assignments = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    declared = {ast.literal_eval(k) for k in assignments["ARGUMENTS"].keys}
    assert {"checkpoint", "device", "namespace", "image_topic", "params_file"} <= declared
    params_default = assignments["ARGUMENTS"].values[[ast.literal_eval(k) for k in assignments["ARGUMENTS"].keys].index("params_file")]
    assert "anyref.yaml" in ast.unparse(params_default)


def test_compressed_topic_is_subscribed_when_asked(ros_context):
    node = AnyRefNode(context=ros_context, parameter_overrides=[rclpy.parameter.Parameter("use_compressed", value=True)])
    node.trigger_configure()
    assert "/image/compressed" in {s.topic_name for s in node.subscriptions}
    node.destroy_node()
