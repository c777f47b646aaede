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
        default = list(p.default) if isinstance(p.default, tuple) else p.default  # a string array
        assert configured_node.get_parameter(p.name).value == default
        (descriptor,) = configured_node.describe_parameters([p.name])
        assert descriptor.description.startswith(p.description)
        if p.range is not None and not isinstance(p.default, bool):
            assert descriptor.integer_range or descriptor.floating_point_range, p.name


def test_params_file_lists_every_parameter_with_its_default():
    data = yaml.safe_load((REPO / "config" / "anyref.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    assert values == {p.name: list(p.default) if isinstance(p.default, tuple) else p.default for p in PARAMS}


def test_params_file_is_generated_from_the_table():
    """config/anyref.yaml is `python -m anyref_ros.param_docs yaml` (comments included)."""
    from anyref_ros.param_docs import yaml_text

    assert (REPO / "config" / "anyref.yaml").read_text() == yaml_text(PARAMS)


README_TABLES = {"### Parameters": "PARAMS", "### anyref_mic parameters": "MIC_PARAMS",
                 "### anyref_speech parameters": "SPEECH_PARAMS"}


def _readme_rows(heading: str) -> dict[str, str]:
    """``name -> default`` of the parameter table under ``heading`` (up to the next heading)."""
    readme = (REPO / "README.md").read_text()
    assert heading + "\n" in readme, f"README has no section {heading!r}"
    section = readme.split(heading + "\n", 1)[1]
    section = re.split(r"^#{1,3} ", section, maxsplit=1, flags=re.M)[0]
    return dict(re.findall(r"^\| `([a-z_]+)` \| `([^`]*)` \|", section, flags=re.M))


@pytest.mark.parametrize("heading", README_TABLES)
def test_readme_table_documents_every_parameter(heading):
    from anyref_ros import parameters
    from anyref_ros.param_docs import readme_default

    table = getattr(parameters, README_TABLES[heading])
    rows = _readme_rows(heading)
    assert list(rows) == [p.name for p in table], f"README table under {heading!r} differs from {README_TABLES[heading]}"
    for p in table:
        assert rows[p.name] == readme_default(p.default).strip("`"), f"README default of {p.name}"


def test_mic_and_speech_params_files_are_generated_from_their_tables():
    from anyref_ros.param_docs import yaml_text
    from anyref_ros.parameters import MIC_PARAMS, SPEECH_PARAMS

    for name, table in (("mic", MIC_PARAMS), ("speech", SPEECH_PARAMS)):
        text = (REPO / "config" / f"{name}.yaml").read_text()
        assert text == yaml_text(table, f"anyref_{name}", f"config/{name}.yaml", f"anyref_{name}"), name


@pytest.mark.parametrize("executable, table, module", [("anyref_mic", "MIC_PARAMS", "mic"),
                                                      ("anyref_speech", "SPEECH_PARAMS", "speech")])
def test_launch_file_starts_the_hearing_nodes(executable, table, module):
    from anyref_ros import parameters

    tree = _launch_tree()
    kw = {k.arg: k.value for k in _node_call(tree, executable).keywords}
    assert ast.literal_eval(kw["name"]) == executable
    assert "condition" in kw  # started only with use_mic / use_speech
    overrides = [d for d in ast.walk(kw["parameters"]) if isinstance(d, ast.Dict)]
    names = {ast.literal_eval(k) for d in overrides for k in d.keys}
    assert names <= {p.name for p in getattr(parameters, table)}
    assert re.search(rf'"{executable} = anyref_ros\.nodes\.{module}:main"', (REPO / "setup.py").read_text())
    assert f'"{executable}=anyref_ros.nodes.{module}:main"' in (REPO / "CMakeLists.txt").read_text()
    assignments = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
    declared = {ast.literal_eval(k) for k in assignments["ARGUMENTS"].keys}
    assert {"use_mic", "use_speech", "audio_topic", "query_topic"} <= declared


def _launch_tree():
    return ast.parse((REPO / "launch" / "anyref.launch.py").read_text())


def _node_call(tree, executable: str = "anyref_node") -> ast.Call:
    """The launch file's Node(...) call that starts ``executable``."""
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Node"]
    mine = [c for c in calls for k in c.keywords
            if k.arg == "executable" and isinstance(k.value, ast.Constant) and k.value.value == executable]
    assert len(mine) == 1
    return mine[0]


def _pairs(tree, remappings: ast.List) -> list[ast.Tuple]:
    """The (source, target) tuples of a remappings list; names bound to tuples are looked up."""
    bound = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name)}
    return [bound[e.id] if isinstance(e, ast.Name) else e for e in remappings.elts]


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
    for pair in _pairs(tree, kw["remappings"]):
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
