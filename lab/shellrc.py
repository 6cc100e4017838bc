"""fab shell's prompt: ``[lab:NODE]`` in front of whatever prompt .bashrc makes, so a student
always sees that the shell is inside a lab node (lab traffic must never leave the host).

bash reads this file instead of ~/.bashrc (``--rcfile``); it reads the usual files first,
then puts the node in front of PS1, and again before every prompt (PROMPT_COMMAND), in
case .bashrc or a prompt framework rewrites PS1 each time.
"""

from __future__ import annotations

from pathlib import Path

from lab import paths
from lab.topology import Node

RC = """\
[ -f /etc/bash.bashrc ] && . /etc/bash.bashrc
[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"
__lab_prompt() {{
    case "$PS1" in "{tag} "*) ;; *) PS1="{tag} $PS1" ;; esac
}}
PROMPT_COMMAND="${{PROMPT_COMMAND:+$PROMPT_COMMAND; }}__lab_prompt"
__lab_prompt
"""


def tag(node: Node) -> str:
    return f"[lab:{node.name}]"


def write(node: Node, directory: Path = paths.STATE) -> Path:
    """The node's rc file, under the lab's state (fab down removes it)."""
    path = directory / f"shell-{node.name}.bashrc"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(RC.format(tag=tag(node)))
    return path
