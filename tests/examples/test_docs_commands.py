"""Every command in README.md and docs/tutorial.md runs, so the docs cannot drift from the code.

The fenced ``sh`` blocks are extracted (`tests.examples.markdown`) and run with bash,
stopping at the first command that fails, on the embedded log in a temporary directory:

- docs/tutorial.md is one session: its blocks in order, in a directory holding the
  repository's ``examples/``, as a reader who follows the page runs them;
- README.md's blocks each run in a directory of their own, given the files and topics the
  block assumes (`GIVEN`, named by the block's first command).

What the test changes in a command, and why: the ports the docs use (8000, 8001, 8080,
8081, 9108-9120) become free ports, as other processes may hold those; ``kafka://
127.0.0.1:9092`` becomes the broker the suite runs against (``$LOOPLINE_KAFKA_BOOTSTRAP``).
Long-running commands run in the background until the block ends (see
`tests.examples.markdown`). The commands not run are listed in `SKIPPED`, each with its
reason, and printed by the test that checks the list is still accurate.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.examples.markdown import Block, command_blocks, script
from tests.examples.shell import REPO, environment, free_ports

TUTORIAL = REPO / "docs" / "tutorial.md"
README = REPO / "README.md"
PORTS = ("8000", "8001", "8080", "8081", *(str(p) for p in range(9108, 9121)))

SKIPPED = {
    "pip install . && loopline demo": "installs the package into the running environment; "
    "`loopline demo` itself runs in tests/demo/test_demo.py",
    "scripts/test.sh": "the whole suite: it would run this test again",
    "scripts/test.sh -k parity": "the whole suite: it would run this test again",
    "scripts/kafka.sh start|stop|status # a local Apache Kafka broker for development": (
        "a usage line of three commands; stopping the broker would stop the suite's Kafka"
    ),
}


def _ports(text: str, first: int) -> str:
    mapping = {port: str(first + i) for i, port in enumerate(PORTS)}
    return re.sub(r"\b(" + "|".join(PORTS) + r")\b", lambda m: mapping[m.group(1)], text)


def _prepare(commands: list[str], kafka: str, first_port: int) -> list[str]:
    out = []
    for command in commands:
        if command in SKIPPED:
            continue
        command = command.replace("kafka://127.0.0.1:9092", f"kafka://{kafka}")
        out.append(_ports(command, first_port))
    return out


def _run(commands: list[str], cwd, home, timeout: float) -> subprocess.CompletedProcess:
    env = environment(home)
    first = free_ports(len(PORTS))
    body = script(_prepare(commands, env["LOOPLINE_KAFKA_BOOTSTRAP"], first))
    (cwd / "commands.sh").write_text(body)
    return subprocess.run(
        ["bash", "commands.sh"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def _check(result: subprocess.CompletedProcess, where: str) -> None:
    if result.returncode != 0:
        pytest.fail(
            f"a command of {where} failed (exit {result.returncode}); the last lines:\n"
            f"{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}",
            pytrace=False,
        )


def test_every_command_of_the_tutorial_runs_in_order(tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples")
    commands = [c for block in command_blocks(TUTORIAL) for c in block.commands()]
    result = _run(commands, tmp_path, tmp_path, timeout=240)
    _check(result, "docs/tutorial.md")
    answers = [line for line in result.stdout.splitlines() if '"items":[' in line]
    assert '"model":"ranker","version":2,' in answers[-1], result.stdout[-2000:]


def test_commands_hide_in_no_unlabelled_block():
    from tests.examples.markdown import blocks

    for page in (README, TUTORIAL):
        for block in blocks(page):
            if block.language == "":
                assert not re.search(r"^\s*(loopline|curl|export) ", block.text, re.M), (
                    f"{page.name} line {block.line}: a block of commands without ```sh is "
                    "not run by this test; fence it as sh"
                )


def _readme_blocks() -> list[Block]:
    return command_blocks(README)
