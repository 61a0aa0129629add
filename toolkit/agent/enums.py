"""Enum types in autogenerate: Alembic compares columns, not the labels of a database's enum types, so a label
added to `db.Enum("a", "b", name="kind")` was "no changes", and a new enum column on an existing table failed with
`type "kind" does not exist`. Here the models' enum types are compared with the database's (through the agent's
dialects: Postgres has named enum types) in an Alembic comparator, and the operations are added to the revision:
a new type is created before the first column that needs it (create_table makes its own), added labels get
ALTER TYPE ... ADD VALUE in an autocommit block, removed or reordered labels a recreated type (flagged destructive
by the review). The revision file holds plain `op.execute(...)` SQL: it runs without devtool.

`plan_labels` is pure (unit-tested on the host); Alembic and SQLAlchemy are imported inside functions.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .dialects import EnumColumn, enum_support

Key = Tuple[Optional[str], str]  # (schema, type name); schema None: the connection's default schema


class LabelPlan:
    """How to get from the database's labels to the models': nothing, labels to add (each placed before or after
    a label that exists by then), or a recreated type (labels removed or reordered)."""

    def __init__(self, before: List[str], after: List[str]) -> None:
        self.before, self.after = list(before), list(after)
        self.removed = [label for label in before if label not in after]
        kept = [label for label in after if label in before]
        self.recreate = bool(self.removed) or kept != [label for label in before if label in after]
        self.additions: List[Tuple[str, Optional[str], Optional[str]]] = []  # (label, before, after)
        if not self.recreate:
            for index, label in enumerate(after):
                if label in before:
                    continue
                if index == 0:
                    self.additions.append((label, after[1] if len(after) > 1 else None, None))
                else:
                    self.additions.append((label, None, after[index - 1]))

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def describe(self) -> str:
        parts = []
        if self.removed:
            parts.append("removes %s" % ", ".join(repr(label) for label in self.removed))
        added = [label for label in self.after if label not in self.before]
        if added:
            parts.append("adds %s" % ", ".join(repr(label) for label in added))
        if self.recreate and not self.removed:
            parts.append("reorders the labels")
        return "; ".join(parts)


def plan_labels(before: List[str], after: List[str]) -> LabelPlan:
    return LabelPlan(before, after)


# ---------------------------------------------------------------------------------------------- the models


def _enum_of(type_):
    """The named native enum a column type is (or holds, as an array or through a TypeDecorator); else None."""
    from sqlalchemy import Enum
    from sqlalchemy.types import ARRAY, TypeDecorator

    if isinstance(type_, TypeDecorator):
        type_ = getattr(type_, "impl_instance", None) or type_.impl
    if isinstance(type_, ARRAY):
        type_ = type_.item_type
    if isinstance(type_, Enum) and type_.native_enum and type_.name:
        return type_
    return None


def _is_array(type_) -> bool:
    from sqlalchemy.types import ARRAY, TypeDecorator

    if isinstance(type_, TypeDecorator):
        type_ = getattr(type_, "impl_instance", None) or type_.impl
    return isinstance(type_, ARRAY)


def _key(enum, table) -> Key:
    schema = enum.schema or (table.schema if getattr(enum, "inherit_schema", False) else None)
    return schema, enum.name


def model_enums(tables) -> Dict[Key, List[str]]:
    """{(schema, name): labels} of the named enum types the models' columns use (the first declaration wins)."""
    found: Dict[Key, List[str]] = {}
    for table in tables:
        for column in table.columns:
            enum = _enum_of(column.type)
            if enum is not None:
                found.setdefault(_key(enum, table), list(enum.enums))
    return found


# ---------------------------------------------------------------------------------------------- Alembic


_installed = False


def install() -> None:
    """Register the comparator and the renderers of the enum operations with Alembic, once per process."""
    global _installed
    if _installed:
        return
    from alembic.autogenerate import comparators, renderers
    from alembic.operations.ops import MigrateOperation

    class EnumOp(MigrateOperation):
        def __init__(self, support, schema, name, labels, columns=(), previous=None, with_table=False):
            self.support, self.schema, self.name = support, schema, name
            self.labels, self.columns, self.previous = list(labels), list(columns), previous
            self.with_table = with_table  # created by the create_table that uses it: nothing to render

    class CreateEnumType(EnumOp):
        def reverse(self):
            return DropEnumType(self.support, self.schema, self.name, self.labels)

        def to_diff_tuple(self):
            return ("add_enum_type", None, "%s (%s)" % (self.name, ", ".join(repr(x) for x in self.labels)))

    class DropEnumType(EnumOp):
        def reverse(self):
            return CreateEnumType(self.support, self.schema, self.name, self.labels)

        def to_diff_tuple(self):
            return ("remove_enum_type", None, self.name)

    class ChangeEnumLabels(EnumOp):
        """From `previous` labels to `labels`: ADD VALUE when only labels are added, else a recreated type."""

        def plan(self) -> LabelPlan:
            return plan_labels(self.previous, self.labels)

        def reverse(self):
            return ChangeEnumLabels(self.support, self.schema, self.name, self.previous, self.columns,
                                    previous=self.labels)

        def to_diff_tuple(self):
            return ("change_enum_labels", None, "%s (%s)" % (self.name, self.plan().describe()))

    def quote_with(autogen_context):
        preparer = autogen_context.dialect.identifier_preparer
        return preparer.quote

    @renderers.dispatch_for(CreateEnumType)
    def render_create(autogen_context, op):
        if op.with_table:
            return []
        return ["op.execute(%r)" % op.support.create(quote_with(autogen_context), op.schema, op.name, op.labels)]

    @renderers.dispatch_for(DropEnumType)
    def render_drop(autogen_context, op):
        return ["op.execute(%r)" % op.support.drop(quote_with(autogen_context), op.schema, op.name)]

    @renderers.dispatch_for(ChangeEnumLabels)
    def render_change(autogen_context, op):
        quote, plan = quote_with(autogen_context), op.plan()
        if plan.recreate:
            return ["op.execute(%r)" % sql for sql in op.support.recreate(quote, op.schema, op.name, op.labels,
                                                                             op.columns)]
        lines = ["with op.get_context().autocommit_block():"]  # the new labels are usable once it commits
        for label, before, after in plan.additions:
            lines.append("op.execute(%r)" % op.support.add_value(quote, op.schema, op.name, label, before, after))
        return lines + [""]  # the blank line ends the block (Alembic's printer dedents on it)

    def compare(autogen_context, upgrade_ops, schemas) -> None:
        support = enum_support(autogen_context.dialect.name)
        connection = autogen_context.connection
        if support is None or connection is None:
            return
        tables = list(getattr(autogen_context, "sorted_tables", None) or _tables(autogen_context.metadata))
        declared = model_enums(tables)
        defined = support.defined(connection)
        if not declared and not defined:
            return
        used = {}
        for key in defined:
            _no_second_create(upgrade_ops, key)
        for key, labels in sorted(declared.items(), key=lambda item: (item[0][0] or "", item[0][1])):
            schema, name = key
            if key not in defined:
                _create_before_first_use(upgrade_ops, support, key, labels, CreateEnumType)
            elif defined[key] != labels:
                plan = plan_labels(defined[key], labels)
                used = used or support.columns(connection)
                columns = _columns_at_the_end(upgrade_ops, support, used.get(key, []), key)
                change = ChangeEnumLabels(support, schema, name, labels, columns, previous=defined[key])
                if plan.recreate:  # after this revision's drops and adds: every remaining column is cast
                    upgrade_ops.ops.append(change)
                else:  # first: anything later in the revision may use the new labels
                    upgrade_ops.ops.insert(0, change)

    try:  # Alembic 1.18+: after its own table comparisons, whichever order the plugins register in
        from alembic.util import DispatchPriority

        comparators.dispatch_for("schema", priority=DispatchPriority.LAST)(compare)
    except (ImportError, TypeError):  # older: registered after Alembic's own, so it runs after them
        comparators.dispatch_for("schema")(compare)
    _installed = True


def _tables(metadata):
    for one in metadata if isinstance(metadata, (list, tuple)) else [metadata]:
        yield from one.sorted_tables


def _uses(op, key: Key):
    """The columns (Column objects) of one Alembic operation whose type is the enum `key`."""
    from alembic.operations import ops

    if isinstance(op, ops.CreateTableOp):
        columns = [c for c in op.columns if hasattr(c, "type")]
        table_schema = op.schema
    elif isinstance(op, ops.AddColumnOp):
        columns, table_schema = [op.column], op.schema
    elif isinstance(op, ops.AlterColumnOp) and op.modify_type is not None:
        enum = _enum_of(op.modify_type)
        return [op] if enum is not None and (enum.schema, enum.name) == key else []
    else:
        return []
    found = []
    for column in columns:
        enum = _enum_of(column.type)
        if enum is not None and ((enum.schema or (table_schema if getattr(enum, "inherit_schema", False) else None)),
                                 enum.name) == key:
            found.append(column)
    return found


def _flat(upgrade_ops):
    """(index in upgrade_ops.ops, operation) for each operation, those inside a ModifyTableOps included."""
    from alembic.operations import ops

    for index, op in enumerate(upgrade_ops.ops):
        if isinstance(op, ops.ModifyTableOps):
            for inner in op.ops:
                yield index, inner
        else:
            yield index, op


def _create_before_first_use(upgrade_ops, support, key: Key, labels, CreateEnumType) -> None:
    """A new type: when a new table is its first use, create_table makes it (Alembic puts every create_table
    before the changes to existing tables) and the revision drops it in its downgrade; before a new column of an
    existing table, the revision creates it itself."""
    from alembic.operations import ops

    users = [(index, op) for index, op in _flat(upgrade_ops) if _uses(op, key)]
    if users:
        index, first = users[0]
        upgrade_ops.ops.insert(index, CreateEnumType(support, key[0], key[1], labels,
                                                     with_table=isinstance(first, ops.CreateTableOp)))


def _no_second_create(upgrade_ops, key: Key) -> None:
    """A type the database has: a create_table would try to create it again and fail with `type "kind" already
    exists`, so its columns say create_type=False. That holds for a new table, and for the create_table a dropped
    table's downgrade runs (the type outlives the table)."""
    from alembic.operations import ops

    for index, op in enumerate(upgrade_ops.ops):
        if isinstance(op, ops.CreateTableOp):
            for column in _uses(op, key):
                column.type = _existing_type(column.type)
        elif isinstance(op, ops.DropTableOp):
            table = op.to_table()
            used = [c for c in table.columns if _enum_of(c.type) is not None and _key(_enum_of(c.type), table) == key]
            for column in used:
                column.type = _existing_type(column.type)
            if used:
                upgrade_ops.ops[index] = ops.DropTableOp.from_table(table)


def _existing_type(type_):
    """The column's enum as postgresql.ENUM(..., create_type=False), which Alembic renders as such."""
    from sqlalchemy.dialects import postgresql

    enum = _enum_of(type_)

    class ExistingEnum(postgresql.ENUM):
        __module__ = "sqlalchemy.dialects.postgresql"  # rendered as postgresql.ENUM(...), the import added

        def __repr__(self) -> str:
            arguments = [repr(label) for label in self.enums] + ["name=%r" % self.name]
            if self.schema:
                arguments.append("schema=%r" % self.schema)
            return "ENUM(%s, create_type=False)" % ", ".join(arguments)

    return ExistingEnum(*enum.enums, name=enum.name, schema=enum.schema, create_type=False)


def _columns_at_the_end(upgrade_ops, support, existing: List[EnumColumn], key: Key) -> List[EnumColumn]:
    """The columns of type `key` once the revision's other operations ran: the database's, minus those it drops,
    plus those it adds."""
    from alembic.operations import ops

    dropped, added = set(), []
    for _, op in _flat(upgrade_ops):
        if isinstance(op, ops.DropTableOp):
            dropped.update((op.schema, op.table_name, c.column) for c in existing if c.table == op.table_name)
        elif isinstance(op, ops.DropColumnOp):
            dropped.add((op.schema, op.table_name, op.column_name))
        elif isinstance(op, (ops.CreateTableOp, ops.AddColumnOp)):
            table = op.table_name
            for column in _uses(op, key):
                default = getattr(column.server_default, "arg", None)
                text = support.literal(default) if isinstance(default, str) else getattr(default, "text", None)
                added.append(EnumColumn(op.schema, table, column.name, _is_array(column.type), text))
    return [c for c in existing if (c.schema, c.table, c.column) not in dropped] + added
