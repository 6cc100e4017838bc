"""fab shell's prompt names the node whatever .bashrc does (lab/shellrc.py)."""

import subprocess

import pytest

from lab import shellrc
from lab.topology import Node

BASHRCS = {
    "sets PS1": "PS1='root@vm:\\w# '\n",
    "rewrites PS1 before every prompt": "PROMPT_COMMAND='PS1=\"root@vm:\\w# \"'\n",
    "nothing": "",
}


@pytest.mark.parametrize("bashrc", BASHRCS.values(), ids=BASHRCS.keys())
def test_the_prompt_shows_the_node(tmp_path, bashrc):
    (tmp_path / ".bashrc").write_text(bashrc)
    node = Node("client", "client", "192.168.56.100")
    rc = shellrc.write(node, tmp_path)
    shown = subprocess.run(["bash", "--rcfile", str(rc), "-i"], input="echo hi\necho again\n",
                           capture_output=True, text=True, timeout=10,
                           env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TERM": "dumb"})
    prompts = [line for line in shown.stderr.splitlines()
               if line.strip() and not line.startswith("bash: ")]  # no job control: no tty
    assert len(prompts) >= 2
    assert all(p.startswith("[lab:client] ") for p in prompts), shown.stderr
    assert "hi" in shown.stdout
