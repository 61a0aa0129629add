"""The Postgres rules of `devtool lint` (squawk's rules are the reference): which operations take long
ACCESS EXCLUSIVE locks, rewrite or scan a table, fail on existing rows, or break the code that is running.
Pure; every rule is listed with an unsafe and a safe revision in docs/lint.md (tested)."""

from __future__ import annotations

import re
from typing import Optional, Tuple

from .lint import UNCHECKED_SQL, Context, Operation, Rule
from .protocol import Severity

# Functions whose result changes row by row: a default calling one is computed for every existing row.
VOLATILE = {"random", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1", "uuid_generate_v1mc",
            "uuid_generate_v4", "uuidv4", "uuidv7", "nextval", "setseed", "txid_current", "pg_current_xact_id"}
# Functions (and keywords) a default may call without a rewrite: evaluated once, stored as the missing value.
NOT_VOLATILE = {"now", "current_timestamp", "current_date", "current_time", "localtime", "localtimestamp",
                "statement_timestamp", "transaction_timestamp", "current_user", "session_user", "current_schema",
                "lower", "upper", "coalesce", "concat", "to_jsonb", "to_json", "jsonb_build_object",
                "json_build_object", "jsonb_build_array", "array", "make_interval", "make_date", "timezone",
                "date_trunc", "length", "abs", "round", "md5", "trim", "replace", "substring", "nullif"}


def _default_problem(default: Optional[str]) -> Optional[str]:
    """Why this default rewrites the table, or None when it is a constant or a non-volatile call."""
    if not default:
        return None
    text = re.sub(r"'(?:[^']|'')*'", "''", default)  # no function names inside string literals
    calls = [name.split(".")[-1].lower() for name in re.findall(r"([A-Za-z_][A-Za-z0-9_.]*)\s*\(", text)]
    volatile = [c for c in calls if c in VOLATILE]
    if volatile:
        return "%s() is volatile" % volatile[0]
    unknown = [c for c in calls if c not in NOT_VOLATILE and c not in ("cast",)]
    if unknown:
        return "devtool cannot tell whether %s() is volatile" % unknown[0]
    return None


def _added_with_default(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind != "add_column" or not ctx.existing(op.table):
        return None
    if op.identity:
        return "adds %s.%s as an identity/serial column: every existing row gets a value" % (op.table, op.column)
    problem = _default_problem(op.default)
    if problem:
        return "adds %s.%s with DEFAULT %s (%s)" % (op.table, op.column, op.default, problem)
    return None


def _required(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "add_column" and ctx.existing(op.table) and op.not_null and not op.default and not op.identity:
        return "adds NOT NULL column %s.%s without a server default" % (op.table, op.column)
    return None


# ---- column types: the casts Postgres does without rewriting the table

_SQLALCHEMY_TYPES = {"string": "varchar", "unicode": "varchar", "varchar": "varchar", "nvarchar": "varchar",
                     "character varying": "varchar", "text": "text", "unicodetext": "text",
                     "numeric": "numeric", "decimal": "numeric", "cidr": "cidr", "inet": "inet"}


def parse_type(text: Optional[str]) -> Optional[Tuple[str, Tuple[int, ...]]]:
    """("varchar", (50,)) from `sa.String(length=50)`, `VARCHAR(50)` or `character varying(50)`; the family
    and its numbers, or (name, ()) for other types, None when unknown."""
    if not text:
        return None
    text = text.strip()
    match = re.match(r"(?:[A-Za-z_][A-Za-z0-9_]*\.)*([A-Za-z_][A-Za-z0-9_ ]*?)\s*(?:\((.*)\))?\s*$", text, re.S)
    if not match:
        return None
    name = match.group(1).strip().lower()
    numbers = tuple(int(n) for n in re.findall(r"(?:^|[=,(\s])(\d+)", match.group(2) or ""))
    return _SQLALCHEMY_TYPES.get(name, name), numbers


def free_cast(old: Optional[str], new: Optional[str]) -> bool:
    """True when changing a column from `old` to `new` needs no rewrite (binary-coercible or a wider limit)."""
    before, after = parse_type(old), parse_type(new)
    if before is None or after is None:
        return False
    (family, size), (new_family, new_size) = before, after
    if (family, size) == (new_family, new_size):
        return True
    if family == "varchar" and new_family == "varchar":
        return not new_size or (bool(size) and new_size[0] >= size[0])
    if family == "varchar" and new_family == "text" or family == "text" and new_family == "varchar":
        return family == "varchar" or not new_size
    if family == "numeric" and new_family == "numeric":
        if not new_size:
            return True
        scale, new_scale = (size + (0, 0))[1], (new_size + (0, 0))[1]
        return bool(size) and scale == new_scale and new_size[0] >= size[0]
    return family == "cidr" and new_family == "inet"


def _type_change(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind != "alter_type" or not ctx.existing(op.table) or free_cast(op.old_type, op.new_type):
        return None
    if "%s.%s" % ((op.table or "").lower(), (op.column or "").lower()) in ctx.new_columns:
        return None
    old = op.old_type or "its current type (not given: pass existing_type= so devtool can tell a free cast)"
    return "changes %s.%s from %s to %s" % (op.table, op.column, old, op.new_type)


def _set_not_null(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind != "set_not_null" or not ctx.existing(op.table) \
            or "%s.%s" % ((op.table or "").lower(), (op.column or "").lower()) in ctx.new_columns:
        return None
    if ctx.validated_before(op) and (ctx.server_version is None or ctx.server_version >= 120000):
        return None  # the documented safe way: a validated NOT NULL check comes first
    return "sets NOT NULL on %s.%s" % (op.table, op.column)


def _index_without_concurrently(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "create_index" and not op.concurrently and ctx.existing(op.table):
        return "creates index %s on %s without CONCURRENTLY" % (op.name or "(unnamed)", op.table)
    return None


def _concurrently_in_transaction(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind in ("create_index", "drop_index") and op.concurrently and not op.in_autocommit:
        verb = "creates" if op.kind == "create_index" else "drops"
        return "%s index %s CONCURRENTLY inside the revision's transaction" % (verb, op.name or "(unnamed)")
    return None


def _drop_index_without_concurrently(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "drop_index" and not op.concurrently and ctx.existing(op.table) \
            and (op.name or "").lower() not in ctx.new_indexes:
        return "drops index %s%s without CONCURRENTLY" % (op.name or "(unnamed)",
                                                            " on %s" % op.table if op.table else "")
    return None


def _foreign_key(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "add_foreign_key" and not op.not_valid and ctx.existing(op.table):
        return "adds foreign key %s on %s without NOT VALID" % (op.name or "(unnamed)", op.table)
    return None


def _check(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "add_check" and not op.not_valid and ctx.existing(op.table):
        return "adds check constraint %s on %s without NOT VALID" % (op.name or "(unnamed)", op.table)
    return None


def _unique(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "add_unique" and not op.using_index and ctx.existing(op.table):
        what = op.name or ("on %s" % op.column if op.column else "(unnamed)")
        return "adds unique constraint %s to %s" % (what, op.table)
    return None


def _primary_key(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "add_primary_key" and not op.using_index and ctx.existing(op.table):
        return "adds primary key %s to %s" % (op.name or op.column or "(unnamed)", op.table)
    return None


def _rename_column(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "rename_column" and ctx.existing(op.table):
        return "renames %s.%s to %s" % (op.table, op.column, op.name)
    return None


def _rename_table(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "rename_table" and ctx.existing(op.table):
        return "renames table %s to %s" % (op.table, op.name)
    return None


def _drop_column(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "drop_column" and ctx.existing(op.table):
        return "drops column %s.%s" % (op.table, op.column)
    return None


def _drop_table(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "drop_table" and ctx.existing(op.table):
        return "drops table %s" % op.table
    return None


def _enum_value(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind != "add_enum_value" or op.in_autocommit:
        return None
    if ctx.server_version is not None and ctx.server_version >= 120000:
        return None
    version = "the server version is unknown" if ctx.server_version is None else \
        "the server is Postgres %d" % (ctx.server_version // 10000)
    return "adds a value to enum type %s inside the revision's transaction (%s)" % (op.name, version)


def _unchecked(op: Operation, ctx: Context) -> Optional[str]:
    if op.kind == "unknown_sql":
        return "op.execute with SQL built at run time that `upgrade --sql` could not render: %s" % op.text
    return None


AUTOCOMMIT = "`with op.get_context().autocommit_block():`"

RULES = [
    Rule("adding-required-field", Severity.ERROR, "NOT NULL column without a default",
         "Every existing row would hold NULL in the new column: on a table with rows the statement fails, and the "
         "revision with it.",
         "Add the column nullable (or with a constant server_default), backfill it, then make it NOT NULL the "
         "safe way (see setting-not-null).", _required),
    Rule("adding-field-with-volatile-default", Severity.ERROR, "column with a volatile default",
         "A volatile default (clock_timestamp(), random(), gen_random_uuid(), nextval(), identity and serial "
         "columns) is computed for every existing row: Postgres rewrites the whole table under an ACCESS "
         "EXCLUSIVE lock, so reads and writes wait. A constant, or now() / CURRENT_TIMESTAMP (one value for all "
         "rows), is stored once without a rewrite (Postgres 11+).",
         "Add the column without that default (or with a constant one), then set the default with "
         "op.alter_column(server_default=...) - it applies to new rows - and backfill the existing rows in "
         "batches.", _added_with_default),
    Rule("changing-column-type", Severity.ERROR, "column type change that rewrites the table",
         "Most type changes rewrite the table and rebuild its indexes under an ACCESS EXCLUSIVE lock: reads and "
         "writes wait for the whole rewrite. Only a few casts are free: varchar(n) to varchar(m >= n), varchar or "
         "text; text to varchar; numeric(p, s) to numeric(p' >= p, s) or numeric; cidr to inet.",
         "Add a new column of the new type, backfill it in batches, move the code over, then drop the old "
         "column - or use one of the free casts (give existing_type= so devtool can tell).", _type_change),
    Rule("setting-not-null", Severity.ERROR, "SET NOT NULL on an existing column",
         "SET NOT NULL scans the whole table under an ACCESS EXCLUSIVE lock (reads and writes wait), and fails "
         "if a NULL is left.",
         "In one revision add CHECK (col IS NOT NULL) NOT VALID; in the next VALIDATE CONSTRAINT (writes "
         "continue), then alter_column(nullable=False) - Postgres 12+ uses the valid check instead of scanning - "
         "and drop the check.", _set_not_null),
    Rule("require-concurrent-index-creation", Severity.WARNING, "index built without CONCURRENTLY",
         "CREATE INDEX holds a SHARE lock on the table while it builds: every INSERT, UPDATE and DELETE waits "
         "until the index is done.",
         "op.create_index(..., postgresql_concurrently=True) inside %s." % AUTOCOMMIT,
         _index_without_concurrently),
    Rule("concurrent-index-in-transaction", Severity.ERROR, "CONCURRENTLY inside a transaction",
         "CREATE / DROP INDEX CONCURRENTLY cannot run inside a transaction block, and every revision runs in "
         "one: the revision fails.",
         "Put the call inside %s (and keep such a revision small: what precedes the block is committed "
         "first)." % AUTOCOMMIT, _concurrently_in_transaction),
    Rule("require-concurrent-index-deletion", Severity.WARNING, "index dropped without CONCURRENTLY",
         "DROP INDEX takes an ACCESS EXCLUSIVE lock on the table: short, but it queues behind any running query "
         "and every query on the table queues behind it.",
         "op.drop_index(..., postgresql_concurrently=True) inside %s." % AUTOCOMMIT,
         _drop_index_without_concurrently),
    Rule("adding-foreign-key-constraint", Severity.WARNING, "foreign key without NOT VALID",
         "Adding a valid foreign key scans the table while holding SHARE ROW EXCLUSIVE locks on both tables: "
         "writes to both wait until every row is checked.",
         "op.create_foreign_key(..., postgresql_not_valid=True) (only new rows are checked), then in a later "
         "revision op.execute(\"ALTER TABLE t VALIDATE CONSTRAINT name\") (writes continue).", _foreign_key),
    Rule("adding-check-constraint", Severity.ERROR, "check constraint without NOT VALID",
         "Adding a valid check constraint scans the whole table under an ACCESS EXCLUSIVE lock: reads and "
         "writes wait.",
         "op.create_check_constraint(..., postgresql_not_valid=True), then in a later revision "
         "op.execute(\"ALTER TABLE t VALIDATE CONSTRAINT name\") (writes continue).", _check),
    Rule("adding-unique-constraint", Severity.ERROR, "unique constraint on an existing table",
         "A new unique constraint builds its index under an ACCESS EXCLUSIVE lock: reads and writes wait for "
         "the whole build.",
         "Build the index first with op.create_index(name, table, cols, unique=True, "
         "postgresql_concurrently=True) inside %s, then op.execute(\"ALTER TABLE t ADD CONSTRAINT name UNIQUE "
         "USING INDEX name\")." % AUTOCOMMIT, _unique),
    Rule("adding-primary-key", Severity.ERROR, "primary key on an existing table",
         "A new primary key builds its index (and checks NOT NULL) under an ACCESS EXCLUSIVE lock: reads and "
         "writes wait.",
         "Build a unique index CONCURRENTLY inside %s, then op.execute(\"ALTER TABLE t ADD CONSTRAINT name "
         "PRIMARY KEY USING INDEX name\")." % AUTOCOMMIT, _primary_key),
    Rule("renaming-column", Severity.ERROR, "column rename",
         "The code that is running (every app server and worker, and the old release during a deploy) still "
         "uses the old name: its queries fail from the moment this commits.",
         "Expand and contract: add the new column, write both, backfill, move reads, then drop the old one in a "
         "later release - or rename only when no old code runs.", _rename_column),
    Rule("renaming-table", Severity.ERROR, "table rename",
         "The code that is running still uses the old name: its queries fail from the moment this commits.",
         "Create the new table (or a view with the old name over it), move the code over, then drop the old "
         "name in a later release.", _rename_table),
    Rule("dropping-column", Severity.ERROR, "column drop",
         "The column's data is gone, and the code that is running fails: SQLAlchemy selects every mapped column "
         "of a model.",
         "First release code that no longer uses the column (remove it from the model), then drop it in a later "
         "revision; devtool takes a snapshot before applying it.", _drop_column),
    Rule("dropping-table", Severity.ERROR, "table drop",
         "The table's rows are gone, and the code that is running and still uses it fails.",
         "First release code that no longer uses the table, then drop it in a later revision; devtool takes a "
         "snapshot before applying it.", _drop_table),
    Rule("adding-enum-value-in-transaction", Severity.ERROR, "ALTER TYPE ... ADD VALUE in a transaction (< 12)",
         "Before Postgres 12, ALTER TYPE ... ADD VALUE cannot run inside a transaction block: the revision "
         "fails. (From 12 on it can, but the new value cannot be used in the same transaction.)",
         "Run it inside %s, or make sure every server runs Postgres 12 or later." % AUTOCOMMIT, _enum_value),
    Rule(UNCHECKED_SQL, Severity.WARNING, "SQL devtool could not see",
         "The statement is built at run time and could not be rendered offline (`upgrade --sql`), so no rule "
         "checked it.",
         "Pass a literal SQL string (or use op.* operations); if you know it is safe, allow the rule with the "
         "reason.", _unchecked),
]
