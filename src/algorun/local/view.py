"""The live view of `algorun run`: each component's state, messages in and out, backlog, dead letters, and
the last lines of anything failing."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from algorun.local.plan import LocalPlan
from algorun.local.progress import Snapshot
from algorun.local.supervisor import State, Supervisor

_STYLE = {
    State.READY: "green",
    State.STARTING: "yellow",
    State.RESTARTING: "yellow",
    State.FAILING: "red",
    State.FAILED: "bold red",
    State.STOPPING: "dim",
    State.STOPPED: "dim",
}


def render(supervisor: Supervisor, plan: LocalPlan, snap: Snapshot | None, log_dir: str) -> RenderableType:
    table = Table(expand=False)
    for column, justify in (
        ("component", "left"),
        ("state", "left"),
        ("restarts", "right"),
        ("in", "right"),
        ("out", "right"),
        ("backlog", "right"),
        ("dead letters", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for status in supervisor.statuses:
        progress = snap.components.get(status.spec.component or "") if snap else None
        table.add_row(
            status.spec.name,
            Text(status.state.value, style=_STYLE[status.state]),
            str(status.restarts),
            str(progress.consumed) if progress else "",
            str(progress.produced) if progress else "",
            str(progress.backlog) if progress else "",
            Text(str(progress.dead_letters), style="red")
            if progress and progress.dead_letters
            else "0"
            if progress
            else "",
        )
    parts: list[RenderableType] = [table]
    if plan.endpoint_urls:
        parts.append(Text("send data: " + "  ".join(f"POST {url}" for url in plan.endpoint_urls)))
    for status in supervisor.statuses:
        if status.state in (State.FAILED, State.RESTARTING, State.FAILING) and status.reason:
            lines = "\n".join(supervisor.tail(status, 8))
            parts.append(
                Panel(lines or "(no output)", title=f"{status.spec.name}: {status.reason}", border_style="red")
            )
    parts.append(Text(f"logs: {log_dir}    Ctrl-C stops everything (drains in-flight work first)", style="dim"))
    return Group(*parts)
