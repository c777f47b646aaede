"""The README parameter table and the params file of a node, generated from its
parameter table in :mod:`anyref_ros.parameters` (the tests check both).

    python -m anyref_ros.param_docs yaml   > config/anyref.yaml
    python -m anyref_ros.param_docs readme          # rows for the README table
    python -m anyref_ros.param_docs yaml --table MIC_PARAMS --node anyref_mic
"""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Iterable

from anyref_ros import parameters
from anyref_ros.parameters import Param

WIDTH = 90  # YAML comment lines, indentation included


def _range(p: Param, sep: str) -> str:
    if p.range is None or isinstance(p.default, bool):
        return ""
    return f" Range {p.range[0]:g}{sep}{p.range[1]:g}."


def _value(v) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, tuple):
        return json.dumps(list(v))
    return repr(v)


def _launch_arg(node: str) -> str:
    """The launch file's argument that names this node's params file."""
    return "params_file" if node == "anyref" else f"{node.removeprefix('anyref_')}_params_file"


def yaml_text(params: Iterable[Param], node: str = "anyref", config: str = "config/anyref.yaml",
              command: str = "anyref_node") -> str:
    """A ``/**: ros__parameters:`` file with every parameter, its default and meaning."""
    lines = [
        f"# Parameters of the {node} node (anyref_ros). Every parameter, its default and",
        "# meaning; the README has the same table. Use with:",
        f"#   {command} --ros-args --params-file {config}",
        f"#   ros2 launch anyref_ros anyref.launch.py {_launch_arg(node)}:={config}",
        "# Generated from anyref_ros/parameters.py: python -m anyref_ros.param_docs yaml",
        "/**:",
        "  ros__parameters:",
    ]
    for p in params:
        text = p.description + ("" if p.live else " [applies at configure/activate]") + _range(p, "..")
        lines += textwrap.wrap(text, WIDTH, initial_indent="    # ", subsequent_indent="    # ")
        lines.append(f"    {p.name}: {_value(p.default)}")
    return "\n".join(lines) + "\n"


def readme_default(value) -> str:
    """A default as the README writes it: `true`, `2.0`, `""` for an empty string."""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`{json.dumps(list(value))}`"
    return '`""`' if value == "" else f"`{value}`"


def readme_rows(params: Iterable[Param]) -> str:
    """Rows of the README table: | parameter | default | meaning | when it applies |."""
    rows = ["| parameter | default | meaning | when it applies |", "|---|---|---|---|"]
    for p in params:
        default = readme_default(p.default)
        text = p.description
        if p.choices:
            text += " One of " + ", ".join(f"`{c}`" for c in p.choices) + "."
        text += _range(p, " to ")
        rows.append(f"| `{p.name}` | {default} | {text} | {'next query' if p.live else 'configure/activate'} |")
    return "\n".join(rows) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=("yaml", "readme"))
    ap.add_argument("--table", default="PARAMS", help="name of the table in anyref_ros.parameters")
    ap.add_argument("--node", default="anyref")
    ap.add_argument("--config", default=None, help="params file path shown in the header")
    ap.add_argument("--command", default=None, help="console entry point shown in the header")
    args = ap.parse_args(argv)
    params = getattr(parameters, args.table)
    if args.what == "yaml":
        config = args.config or ("config/anyref.yaml" if args.node == "anyref" else f"config/{args.node.removeprefix('anyref_')}.yaml")
        command = args.command or ("anyref_node" if args.node == "anyref" else args.node)
        print(yaml_text(params, args.node, config, command), end="")
    else:
        print(readme_rows(params), end="")


if __name__ == "__main__":
    main()
