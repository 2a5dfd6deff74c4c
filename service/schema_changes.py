"""Schema evolution: what a load may change in an existing table, and what it must refuse.

A column added to the schema (NULLABLE or REPEATED) is added to the table, and a REQUIRED column
made NULLABLE is relaxed: both are safe for the rows already there, and BigQuery allows both
(ALLOW_FIELD_ADDITION / ALLOW_FIELD_RELAXATION). Anything else (a type changed, a column gone,
a new REQUIRED column, NULLABLE made REQUIRED) is refused in one line that names the column and
what to do. Pure: each warehouse says how it spells a column's type (nested fields included),
applies the change, and logs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from service.errors import PermanentError
from service.models import Column, TableSpec

# A table's column as the warehouse reports it: its type as the warehouse spells it, its mode.
Existing = dict[str, tuple[str, str]]


@dataclass(frozen=True)
class SchemaChange:
    """What a load applies to an existing table first."""

    added: tuple[Column, ...] = ()
    relaxed: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.relaxed)

    def describe(self) -> str:
        parts = [f"added column {c.name} ({c.type} {c.mode})" for c in self.added]
        parts += [f"relaxed column {name} to NULLABLE" for name in self.relaxed]
        return ", ".join(parts)


def plan_change(table: TableSpec, have: Existing, spell: Callable[[Column], str]) -> SchemaChange:
    """The change that brings the table to ``table``'s schema, or PermanentError saying why
    no load may make it."""
    refuse = _refusal(table.name)
    wanted = {c.name for c in table.columns}
    for name in have:
        if name not in wanted:
            raise refuse(
                name,
                "is in the table but not in the schema: put it back in the schema (as NULLABLE"
                " it may stay empty); a load never drops a column",
            )
    added: list[Column] = []
    relaxed: list[str] = []
    for column in table.columns:
        if column.name not in have:
            if column.required:
                raise refuse(
                    column.name,
                    "is new and REQUIRED: add it as NULLABLE (the rows already loaded have no"
                    " value for it)",
                )
            added.append(column)
            continue
        kind, mode = have[column.name]
        if kind != spell(column) or (mode == "REPEATED") != column.repeated:
            raise refuse(
                column.name,
                f"is {kind} {mode} in the table, {spell(column)} {column.mode} in the schema:"
                " a load cannot change a column's type; load into a new table, or change the"
                " table yourself",
            )
        if mode == "REQUIRED" and not column.required:
            relaxed.append(column.name)
        elif mode != "REQUIRED" and column.required:
            raise refuse(
                column.name,
                "is NULLABLE in the table, REQUIRED in the schema: a load can relax a column,"
                " never tighten it; keep it NULLABLE in the schema",
            )
    return SchemaChange(tuple(added), tuple(relaxed))


def _refusal(table: str) -> Callable[[str, str], PermanentError]:
    def refuse(column: str, why: str) -> PermanentError:
        return PermanentError(f"table {table} exists with another schema: column {column!r} {why}")

    return refuse
