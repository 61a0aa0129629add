"""The review of a revision file: each Alembic operation of its upgrade() with a risk (pure; unit-tested)."""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import replace
import re
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


# Positional parameters of each operation, as Alembic declares them: on `op` and on a batch_alter_table's
# `batch_op` (whose table is the batch's). The names say what each argument is.
OP_PARAMS = {
    "create_table": ["table_name"], "drop_table": ["table_name"], "add_column": ["table_name", "column"],
    "drop_column": ["table_name", "column_name"], "alter_column": ["table_name", "column_name"],
    "create_index": ["index_name", "table_name", "columns"], "drop_index": ["index_name", "table_name"],
    "create_foreign_key": ["constraint_name", "source_table", "referent_table", "local_cols", "remote_cols"],
    "create_unique_constraint": ["constraint_name", "table_name", "columns"],
    "create_check_constraint": ["constraint_name", "table_name", "condition"],
    "create_primary_key": ["constraint_name", "table_name", "columns"],
    "drop_constraint": ["constraint_name", "table_name"], "rename_table": ["old_table_name", "new_table_name"],
    "execute": ["sqltext"],
}
BATCH_PARAMS = {name: [p for p in params if p not in ("table_name", "source_table")]
                for name, params in OP_PARAMS.items()}
# SQL that op.execute runs and the review recognises: enum types (Postgres), which devtool itself generates.
SQL_CHANGES = (
    (re.compile(r"^\s*CREATE\s+TYPE\s+(?P<name>\S+)\s+AS\s+ENUM", re.I), "add_enum_type", "add enum type",
     Risk.SAFE, ""),
    (re.compile(r"^\s*ALTER\s+TYPE\s+(?P<name>\S+)\s+ADD\s+VALUE\s+(IF\s+NOT\s+EXISTS\s+)?'(?P<value>(?:[^']|'')*)'",
                re.I), "add_enum_value", "add enum value", Risk.SAFE, ""),
    (re.compile(r"^\s*ALTER\s+TYPE\s+(?P<name>\S+)\s+RENAME\s+TO\s+", re.I), "recreate_enum_type",
     "recreate enum type", Risk.DESTRUCTIVE,
     "recreates the type to change its labels: rows holding a removed label make it fail; a renamed label is "
     "not carried over (ALTER TYPE ... RENAME VALUE keeps the rows)"),
    (re.compile(r"^\s*DROP\s+TYPE\s+(IF\s+EXISTS\s+)?(?P<name>\S+)", re.I), "drop_enum_type", "drop enum type",
     Risk.DESTRUCTIVE, "drops a type"),
)


def _name(node: Optional[ast.AST]) -> Optional[str]:
    """A literal name, also through op.f("name") / batch_op.f("name") (Alembic's "already converted" marker)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "f" and node.args:
        node = node.args[0]
    value = _literal(node)
    return value if isinstance(value, str) else None


def _columns(node: Optional[ast.AST]) -> Optional[str]:
    """["a", "b"] -> "a, b" (expressions shown as they are written)."""
    if isinstance(node, (ast.List, ast.Tuple)):
        return ", ".join(_name(e) or ast.unparse(e) if hasattr(ast, "unparse") else _name(e) or "?"
                         for e in node.elts) or None
    return _name(node)


def _bind(call: ast.Call, params: List[str]) -> dict:
    """The call's arguments by parameter name: positional ones in declaration order, then keywords."""
    bound = {name: arg for name, arg in zip(params, call.args)}
    bound.update({kw.arg: kw.value for kw in call.keywords if kw.arg})
    return bound


def _index_columns(source_tree: ast.Module, function: str) -> dict:
    """{index or constraint name: its columns} as `function` (downgrade) creates them: a dropped index's columns
    come from the downgrade that puts it back."""
    found = {}
    body = next((n for n in source_tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    for node in ast.walk(body) if body is not None else ():
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name in ("create_index", "create_unique_constraint", "create_primary_key", "create_foreign_key"):
                batch = not (isinstance(node.func.value, ast.Name) and node.func.value.id == "op")
                args = _bind(node, (BATCH_PARAMS if batch else OP_PARAMS)[name])
                key = _name(args.get("index_name") or args.get("constraint_name"))
                if key:
                    found[key] = _columns(args.get("columns") or args.get("local_cols"))
    return found


def classify_upgrade(source: str, function: str = "upgrade") -> List[Change]:
    """The operations of a revision's upgrade() (or `function`: downgrade), each with a risk: safe,
    destructive, risky or rename. In a multi-database revision, those of each upgrade_<engine>() with its
    engine's name (bind)."""
    return classify_tree(ast.parse(source), function)


def classify_tree(tree: ast.Module, function: str = "upgrade") -> List[Change]:
    """classify_upgrade() of an already parsed file (the lint reads the same tree)."""
    upgrade = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if upgrade is None:
        return []
    other = "upgrade" if function == "downgrade" else "downgrade"  # where a dropped index's columns are
    if upgrade.args.args:  # flask db init --multidb: upgrade(engine_name) runs upgrade_<engine_name>()
        changes = []
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith(function + "_"):
                bind = node.name[len(function) + 1:]
                changes += [replace(c, bind=bind)
                            for c in _operations(node, _index_columns(tree, "%s_%s" % (other, bind)))]
        return changes
    return _operations(upgrade, _index_columns(tree, other))


def _operations(upgrade: ast.FunctionDef, restored: dict) -> List[Change]:
    """The judged operations of one function's body; `restored`: the columns of the indexes and constraints the
    opposite function creates."""
    changes: List[Change] = []

    def visit(statements, batch_tables):
        for stmt in statements:
            if isinstance(stmt, ast.With):
                tables = dict(batch_tables)
                for item in stmt.items:
                    call = item.context_expr
                    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                            and call.func.attr == "batch_alter_table" and isinstance(item.optional_vars, ast.Name)):
                        tables[item.optional_vars.id] = _literal(call.args[0]) if call.args else _literal(
                            _keyword(call, "table_name"))
                visit(stmt.body, tables)
                continue
            for node in ast.walk(stmt):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and isinstance(node.func.value, ast.Name):
                    owner, name = node.func.value.id, node.func.attr
                    if owner == "op" or owner in batch_tables:
                        record(name, node, owner != "op", batch_tables.get(owner))

    def record(name, call, batch, batch_table):
        if name not in OP_LABELS:
            return
        args = _bind(call, (BATCH_PARAMS if batch else OP_PARAMS)[name])
        table = batch_table if batch else _name(args.get("table_name") or args.get("source_table")
                                                or args.get("old_table_name"))
        change = Change(op=name, label=OP_LABELS[name], table=table)
        if name == "add_column":
            column = args.get("column")
            if isinstance(column, ast.Call):
                change.column, nullable, server_default = _column_facts(column)
                if not nullable and not server_default:
                    change.risk = Risk.RISKY
                    change.reason = "NOT NULL without a server default: fails on a table with rows"
        elif name == "alter_column":
            change.column = _name(args.get("column_name"))
            if args.get("type_") is not None:
                change.risk, change.reason = Risk.DESTRUCTIVE, "changes the column type: values may be cast or lost"
            elif args.get("nullable") is not None and _literal(args["nullable"]) is False:
                change.risk, change.reason = Risk.RISKY, "sets NOT NULL: fails if any row holds NULL"
            if args.get("new_column_name") is not None:
                change.label = "rename column"
        elif name == "drop_column":
            change.column = _name(args.get("column_name"))
        elif name == "rename_table":
            change.column = None
            change.name = _name(args.get("new_table_name"))
        elif name == "execute":
            sql = _literal(args.get("sqltext"))
            for pattern, op, label, risk, reason in SQL_CHANGES if isinstance(sql, str) else ():
                match = pattern.match(sql)
                if match:
                    change.op, change.label, change.risk, change.reason = op, label, risk, reason
                    change.name = match.group("name").replace('"', "")
                    if "value" in pattern.groupindex:
                        change.column = match.group("value").replace("''", "'")
                    break
        else:  # indexes and constraints: their name, and the columns they cover
            change.name = _name(args.get("index_name") or args.get("constraint_name"))
            change.column = _columns(args.get("columns") or args.get("local_cols")) or restored.get(change.name)
            if name == "create_foreign_key":
                change.reason = "references %s" % _name(args.get("referent_table"))
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
