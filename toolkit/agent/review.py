"""The review of a revision file: each Alembic operation of its upgrade() with a risk (pure; unit-tested)."""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import replace
from typing import List, Optional

from .protocol import Change, Risk

# How each Alembic operation in an upgrade() body is judged. Anything not listed is shown as safe.
DESTRUCTIVE = {"drop_table": "drops a table and its data", "drop_column": "drops a column and its data",
               "drop_constraint": "drops a constraint", "drop_index": "drops an index"}
OP_LABELS = {"create_table": "add table", "drop_table": "drop table", "add_column": "add column",
             "drop_column": "drop column", "alter_column": "alter column", "create_index": "add index",
             "drop_index": "drop index", "create_foreign_key": "add foreign key",
             "create_unique_constraint": "add unique constraint", "create_check_constraint": "add check constraint",
             "create_primary_key": "add primary key", "drop_constraint": "drop constraint",
             "rename_table": "rename table", "execute": "run SQL"}


def read_source(path: str) -> str:
    """A revision file's text the way Python (and so Alembic) reads it: a UTF-8 BOM or a coding cookie is
    honoured. Raises OSError, or SyntaxError / UnicodeDecodeError when Python could not read it either."""
    with open(path, "rb") as handle:
        return importlib.util.decode_source(handle.read())


def _literal(node: Optional[ast.AST]):
    if isinstance(node, ast.Constant):
        return node.value
    return getattr(node, "s", None) if isinstance(node, getattr(ast, "Str", ())) else None


def _keyword(call: ast.Call, name: str) -> Optional[ast.AST]:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _column_facts(column_call: ast.Call):
    """(name, nullable, has_server_default) of an sa.Column(...) call."""
    name = _literal(column_call.args[0]) if column_call.args else None
    nullable_node = _keyword(column_call, "nullable")
    primary = _keyword(column_call, "primary_key")
    nullable = True
    if nullable_node is not None:
        nullable = _literal(nullable_node) is not False
    if primary is not None and _literal(primary) is True:
        nullable = False
    return name, nullable, _keyword(column_call, "server_default") is not None


def classify_upgrade(source: str, function: str = "upgrade") -> List[Change]:
    """The operations of a revision's upgrade() (or `function`: downgrade), each with a risk: safe,
    destructive, risky or rename. In a multi-database revision, those of each upgrade_<engine>() with its
    engine's name (bind)."""
    tree = ast.parse(source)
    upgrade = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if upgrade is None:
        return []
    if upgrade.args.args:  # flask db init --multidb: upgrade(engine_name) runs upgrade_<engine_name>()
        changes = []
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith(function + "_"):
                changes += [replace(c, bind=node.name[len(function) + 1:]) for c in _operations(node)]
        return changes
    return _operations(upgrade)


def _operations(upgrade: ast.FunctionDef) -> List[Change]:
    """The judged operations of one function's body."""
    changes: List[Change] = []

    def visit(statements, batch_tables):
        for stmt in statements:
            if isinstance(stmt, ast.With):
                tables = dict(batch_tables)
                for item in stmt.items:
                    call = item.context_expr
                    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                            and call.func.attr == "batch_alter_table" and isinstance(item.optional_vars, ast.Name)):
                        tables[item.optional_vars.id] = _literal(call.args[0]) if call.args else None
                visit(stmt.body, tables)
                continue
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and isinstance(node.func.value, ast.Name):
                    owner, name = node.func.value.id, node.func.attr
                    if owner == "op" or owner in batch_tables:
                        record(name, node, batch_tables.get(owner) if owner != "op" else None)

    def record(name, call, batch_table):
        if name not in OP_LABELS:
            return
        args = list(call.args)
        table = batch_table
        if table is None and name not in ("execute", "drop_index", "create_index") and args:
            table = _literal(args.pop(0))
        elif name in ("drop_index", "create_index"):
            table = _literal(_keyword(call, "table_name")) or (
                _literal(args[1]) if len(args) > 1 and name == "create_index" else batch_table)
        change = Change(op=name, label=OP_LABELS[name], table=table)
        if name == "add_column":
            column = next((a for a in args if isinstance(a, ast.Call)), None)
            if column is not None:
                change.column, nullable, server_default = _column_facts(column)
                if not nullable and not server_default:
                    change.risk = Risk.RISKY
                    change.reason = "NOT NULL without a server default: fails on a table with rows"
        elif name == "alter_column":
            change.column = _literal(args[0]) if args else None
            if _keyword(call, "type_") is not None:
                change.risk, change.reason = Risk.DESTRUCTIVE, "changes the column type: values may be cast or lost"
            elif _keyword(call, "nullable") is not None and _literal(_keyword(call, "nullable")) is False:
                change.risk, change.reason = Risk.RISKY, "sets NOT NULL: fails if any row holds NULL"
            if _keyword(call, "new_column_name") is not None:
                change.label = "rename column"
        elif name in ("drop_column", "drop_index", "drop_constraint", "create_index", "rename_table"):
            change.column = _literal(args[0]) if args else None
        if name in DESTRUCTIVE:
            change.risk, change.reason = Risk.DESTRUCTIVE, DESTRUCTIVE[name]
        changes.append(change)

    visit(upgrade.body, {})
    _flag_probable_renames(changes)
    return changes


def _flag_probable_renames(changes: List[Change]) -> None:
    """Autogenerate writes a rename as drop + add: the data would be lost, so say what it probably is."""
    dropped_tables = [c for c in changes if c.op == "drop_table"]
    added_tables = [c for c in changes if c.op == "create_table"]
    if dropped_tables and added_tables:
        for change in dropped_tables + added_tables:
            others = added_tables if change in dropped_tables else dropped_tables
            change.risk = Risk.RENAME
            change.reason = "probable rename (%s): autogenerate drops and re-creates, losing the rows" % (
                " / ".join(str(o.table) for o in others))
    for drop in [c for c in changes if c.op == "drop_column"]:
        adds = [c for c in changes if c.op == "add_column" and c.table == drop.table]
        if adds:
            for change in [drop] + adds:
                change.risk = Risk.RENAME
                change.reason = "probable rename of %s.%s to %s: use op.alter_column(new_column_name=...)" % (
                    drop.table, drop.column, "/".join(str(a.column) for a in adds))


def needs_review(changes: List[Change]) -> List[Change]:
    return [c for c in changes if c.risk != Risk.SAFE]
