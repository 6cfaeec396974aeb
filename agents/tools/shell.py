"""The ``shell`` tool: run a bash script in the sandbox, in the session's scratch folder.

When the sandbox cannot be built here the tool stays in the toolbox but disabled: every call
answers with the reason, and nothing runs unsandboxed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.llm.base import ToolSpec
from emberlake.errors import SandboxUnavailable

from .base import ToolOutput
from .sandbox import BubblewrapSandbox

SPEC = ToolSpec(
    name="shell",
    description=(
        "Run a bash script in a sandbox: no network, read-only system, only the current folder"
        " (kept for this session) is writable, limited CPU, memory, processes and time. Use it"
        " for calculations or text processing over results you already have."
    ),
    input_schema={
        "type": "object",
        "properties": {
            "script": {"type": "string", "description": "bash script to run"},
            "timeout_seconds": {"type": "number", "description": "at most the configured limit"},
        },
        "required": ["script"],
    },
)


class ShellTool:
    """Runs scripts in a :class:`BubblewrapSandbox`, or explains why it cannot."""

    def __init__(self, sandbox: BubblewrapSandbox | SandboxUnavailable, scratch: Path):
        self.sandbox = sandbox
        self.scratch = Path(scratch)

    @property
    def spec(self) -> ToolSpec:
        if isinstance(self.sandbox, SandboxUnavailable):
            return ToolSpec(
                SPEC.name, f"DISABLED ({self.sandbox}). " + SPEC.description, SPEC.input_schema
            )
        return SPEC

    @property
    def enabled(self) -> bool:
        return not isinstance(self.sandbox, SandboxUnavailable)

    def needs_approval(self, arguments: Mapping[str, Any]) -> str | None:
        return None

    def run(self, arguments: Mapping[str, Any]) -> ToolOutput:
        if isinstance(self.sandbox, SandboxUnavailable):
            return ToolOutput.error(f"the shell tool is disabled: {self.sandbox}")
        script = str(arguments["script"])
        timeout = arguments.get("timeout_seconds")
        done = self.sandbox.run(
            ["/bin/bash", "-c", script], self.scratch, float(timeout) if timeout else None
        )
        result = {
            "exit_code": done.returncode,
            "stdout": done.stdout,
            "stderr": done.stderr,
            "timed_out": done.timed_out,
        }
        return ToolOutput(ToolOutput.of(result).content, is_error=done.returncode != 0)
