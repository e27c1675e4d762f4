"""The fenced command blocks of a markdown page, and how the docs test runs each command.

A block fenced as ``sh`` or ``bash`` holds commands; a line ending in ``\\`` continues on
the next. A command is *long-running* when it serves or follows until stopped (`serve`,
`ingest-server`, `schema-registry`, `features run`, `outcomes run`, `experiments run`,
`monitor`, `dashboard`, `cdc run`, `alerts --follow`, `train --every` or `--online`,
`consume`, each without `--until-caught-up`, `--until-idle`, `--runs`, `--timeout` or
`--max` outside its comment): a user starts it in another terminal, the test starts it
in the background, waits until it answers (its `/readyz` or `/healthz` when it has a
port; `train --every` until its first version is published; else until it has run
for 3 s) and fails if it fails before the block ends (a clean exit, as `cdc run`'s when
the block removes its capture, is no failure).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```(\S*)\s*$")
LONG_RUNNING = re.compile(
    r"^loopline( --log \S+)? (serve|ingest-server|schema-registry|features run|outcomes run|"
    r"experiments run|monitor|dashboard|cdc run)\b|^loopline .*alerts .*--follow|"
    r"^loopline( --log \S+)? train .*(--every |--online)|^loopline( --log \S+)? consume "
)
FINITE = re.compile(r"--until-caught-up|--until-idle|--runs |--timeout |--max ")


@dataclass(frozen=True)
class Block:
    """One fenced block: the page, the line its fence opens on, its language and lines."""

    page: str
    line: int
    language: str
    text: str

    def commands(self) -> list[str]:
        """The block's commands, continuation lines joined, blank and comment lines out."""
        joined, current = [], ""
        for raw in self.text.splitlines():
            line = raw.rstrip()
            if line.endswith("\\"):
                current += line[:-1].rstrip() + " "
                continue
            current += line.strip() if current else line
            if current.strip() and not current.lstrip().startswith("#"):
                joined.append(current.strip())
            current = ""
        return joined


def blocks(path: Path) -> list[Block]:
    """Every fenced block of the page at `path`, in order."""
    found, language, start, lines = [], None, 0, []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        match = FENCE.match(line)
        if match and language is None:
            language, start, lines = match.group(1), number, []
        elif line.startswith("```") and language is not None:
            found.append(Block(path.name, start, language, "\n".join(lines)))
            language = None
        elif language is not None:
            lines.append(line)
    return found


def command_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.language in ("sh", "bash", "shell")]


def is_long_running(command: str) -> bool:
    """Whether `command` runs until stopped (see the module's docstring)."""
    command = re.sub(r"\s+#.*$", "", command).rstrip().rstrip("&").strip()
    return bool(LONG_RUNNING.search(command)) and not FINITE.search(command)


def port_of(command: str) -> int | None:
    found = re.search(r"--port[ =](\d+)", command)
    return int(found.group(1)) if found else None


def script(commands: list[str]) -> str:
    """A bash script running `commands` in order, stopping at the first that fails; a
    long-running command runs in the background until the script's end, and must still
    be running then."""
    lines = [
        "set -euo pipefail",
        "pids=(); names=()",
        'finish() { status=$?; for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true;'
        " done; wait 2>/dev/null || true; exit $status; }",
        "trap finish EXIT",
        'curl() { command curl --fail-with-body -sS "$@"; }  # an HTTP error fails the block',
        "ready() {  # ready PID URL PATTERN NAME",
        "  for _ in $(seq 600); do",
        '    kill -0 "$1" 2>/dev/null || { echo "exited early: $4" >&2; cat bg-$1.log >&2;'
        " return 1; }",
        '    [ -z "$2" ] && { sleep 3; kill -0 "$1" 2>/dev/null && return 0; continue; }',
        '    [ "$2" = log ] && { grep -q "$3" bg-$1.log 2>/dev/null && return 0; sleep 0.1;'
        " continue; }",
        '    curl -s "$2" 2>/dev/null | grep -q "$3" && return 0',
        "    sleep 0.1",
        '  done; echo "not ready after 60 s: $4" >&2; cat bg-$1.log >&2; return 1',
        "}",
    ]
    for command in commands:
        echo = command.replace("'", "'\\''")
        lines.append(f"echo '$ {echo}'")
        if is_long_running(command):
            command = re.sub(r"\s+#.*$", "", command).rstrip().rstrip("&").strip()
            port = port_of(command)
            if port is None and re.search(r"\btrain\b.*--every", command):
                url, pattern = "log", "published "  # its first run has published a version
            elif port is None:
                url, pattern = "", ""
            elif re.search(r"\bserve\b", command) and "--from" not in command:
                url, pattern = f"http://127.0.0.1:{port}/readyz", '"ready":true'
            else:
                url, pattern = f"http://127.0.0.1:{port}/healthz", ""
            # a simple command, so that $! is the command itself and the kill reaches it
            # the job opens its log after the fork: name it first, link it by pid after
            lines.append(
                f"{command} > bg-{len(lines)}.log 2>&1 & p=$!; ln -sf bg-{len(lines)}.log bg-$p.log"
            )
            lines.append("pids+=($p); names+=(" + repr_sh(command) + ")")
            lines.append(f"ready $p '{url}' '{pattern}' {repr_sh(command)}")
        else:
            lines.append(command)
    lines.append(
        'for i in "${!pids[@]}"; do kill -0 "${pids[$i]}" 2>/dev/null || wait "${pids[$i]}" || '
        '{ echo "failed before the end: ${names[$i]}" >&2; cat bg-${pids[$i]}.log >&2; exit 1; }; done'
    )
    return "\n".join(lines) + "\n"


def repr_sh(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
