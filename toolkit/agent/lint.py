"""Linting a revision: its operations as neutral facts, judged by a dialect's rules (pure; unit-tested on the host).

Two readers produce the same facts (`Operation`): the AST of the revision's `upgrade()` (and each
`upgrade_<bind>()` of a multi-database project) for `op.*` calls, and a small SQL reader for the statements of
`op.execute` (literal strings, or the statements `upgrade --sql` rendered for it when the SQL is built at run
time). A dialect's rules (agent/lint_postgres.py) then judge each fact; `# devtool: allow <rule-id> <reason>`
anywhere in the file silences one rule for that revision, and the reason is kept with the finding.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Set

from .protocol import Finding, Severity

ALLOW = re.compile(r"#\s*devtool:\s*allow\b\s*([^\s]*)\s*(.*?)\s*$")
INVALID_ALLOW = "invalid-allow"
UNCHECKED_SQL = "unchecked-sql"


@dataclass
class Operation:
    """One thing a revision does to the database, whichever way it was written."""

    kind: str  # create_table, add_column, alter_type, set_not_null, rename_column, rename_table, drop_column,
    # drop_table, create_index, drop_index, add_foreign_key, add_check, add_unique, add_primary_key,
    # add_enum_value, validate_constraint, unknown_sql
    line: int
    table: Optional[str] = None
    column: Optional[str] = None
    text: str = ""  # the call or the statement, for messages
    not_null: bool = False
    default: Optional[str] = None  # the server default as SQL (or the expression's source)
    identity: bool = False  # serial / identity column: every existing row gets a new value
    old_type: Optional[str] = None
    new_type: Optional[str] = None
    concurrently: bool = False
    in_autocommit: bool = False  # inside `autocommit_block()`: not in a transaction
    not_valid: bool = False
    using_index: bool = False
    name: Optional[str] = None  # index, constraint or enum type


@dataclass
class Context:
    """What the rules may know beyond one operation."""

    new_tables: Set[str] = field(default_factory=set)  # created by this revision: no rows, nobody uses them yet
    new_columns: Set[str] = field(default_factory=set)  # "table.column" added by this revision
    new_indexes: Set[str] = field(default_factory=set)
    validated: Dict[str, int] = field(default_factory=dict)  # table -> first line with VALIDATE CONSTRAINT on it
    server_version: Optional[int] = None  # server_version_num (150004), None when unknown

    def existing(self, table: Optional[str]) -> bool:
        return table is None or table.lower() not in self.new_tables

    def validated_before(self, op: "Operation") -> bool:
        """A constraint of the op's table was validated earlier in this revision (a NOT NULL check lets
        Postgres 12+ set NOT NULL without scanning)."""
        return self.validated.get((op.table or "").lower(), op.line + 1) < op.line


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: str
    why: str
    safe: str
    check: Callable[[Operation, Context], Optional[str]]  # the finding's message, or None


# ---------------------------------------------------------------------------------------------- lint


class Linter:
    """A dialect's rules and what they need to know about the server, for every revision of one request."""

    def __init__(self, dialect: str, rules: List[Rule], server_version: Optional[int] = None) -> None:
        self.dialect, self.rules, self.server_version = dialect, rules, server_version

    def lint(self, tree: ast.Module, source: str, render=None) -> List[Finding]:
        """The findings of one parsed revision file; `render()` ({line: [SQL]} or None) is asked only when an
        op.execute builds its SQL at run time."""
        if not self.rules:
            return []
        operations = operations_from_tree(tree, source)
        if render is not None and any(op.kind == "unknown_sql" for op in operations):
            rendered = render()
            if rendered:
                operations = _with_rendered(operations, rendered)
        return judge(operations, self.rules, source, server_version=self.server_version)


def lint_tree(tree: ast.Module, source: str, rules: List[Rule], *, server_version: Optional[int] = None,
              rendered: Optional[Dict[int, List[str]]] = None) -> List[Finding]:
    """The findings of one revision file. `rendered`: statements `upgrade --sql` produced, by source line, for
    the op.execute calls whose SQL is only known at run time."""
    operations = operations_from_tree(tree, source)
    if rendered:
        operations = _with_rendered(operations, rendered)
    return judge(operations, rules, source, server_version=server_version)


def judge(operations: List[Operation], rules: List[Rule], source: str = "", *,
          server_version: Optional[int] = None) -> List[Finding]:
    context = Context(server_version=server_version)
    for op in operations:
        if op.kind == "create_table" and op.table:
            context.new_tables.add(op.table.lower())
        elif op.kind == "add_column" and op.table and op.column:
            context.new_columns.add("%s.%s" % (op.table.lower(), op.column.lower()))
        elif op.kind == "create_index" and op.name:
            context.new_indexes.add(op.name.lower())
        elif op.kind == "validate_constraint" and op.table:
            context.validated.setdefault(op.table.lower(), op.line)
    findings = []
    for op in operations:
        for rule in rules:
            message = rule.check(op, context)
            if message:
                findings.append(Finding(rule=rule.id, severity=rule.severity, message=message, why=rule.why,
                                        safe=rule.safe, line=op.line, table=op.table, column=op.column))
    allowed, problems = allowances(source, {r.id for r in rules})
    for finding in findings:
        if finding.rule in allowed:
            finding.allowed = allowed[finding.rule]
    return findings + problems


def allowances(source: str, known: Set[str]):
    """({rule id: reason}, findings for malformed allow comments) from `# devtool: allow <rule-id> <reason>`."""
    allowed: Dict[str, str] = {}
    problems: List[Finding] = []
    if "devtool:" not in source:  # the common case, without tokenizing
        return allowed, problems
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return allowed, problems
    for token in tokens:
        match = ALLOW.match(token.string)
        if match is None:
            continue
        rule, reason = match.group(1), match.group(2)
        problem = None
        if rule not in known:
            problem = "`%s` names no rule (known: %s)" % (token.string.strip(), ", ".join(sorted(known)))
        elif not reason:
            problem = "`%s` gives no reason: the rule stays on" % token.string.strip()
        if problem:
            problems.append(Finding(rule=INVALID_ALLOW, severity=Severity.WARNING, message=problem,
                                    why="A suppression must name a rule and say why it is safe here.",
                                    safe="# devtool: allow <rule-id> <why it is safe here>", line=token.start[0]))
        else:
            allowed[rule] = reason
    return allowed, problems


def _with_rendered(operations: List[Operation], rendered: Dict[int, List[str]]) -> List[Operation]:
    result = []
    for op in operations:
        if op.kind == "unknown_sql" and op.line in rendered:
            for statement in rendered[op.line]:
                result.extend(operations_from_sql(statement, op.line, in_autocommit=op.in_autocommit))
        else:
            result.append(op)
    return result


# ---------------------------------------------------------------------------------------------- AST reader


def upgrade_functions(tree: ast.Module) -> List[ast.FunctionDef]:
    """upgrade(), and upgrade_<bind>() of Flask-Migrate's multi-database template."""
    return [n for n in tree.body if isinstance(n, ast.FunctionDef)
            and (n.name == "upgrade" or n.name.startswith("upgrade_"))]


def operations_from_tree(tree: ast.Module, source: str) -> List[Operation]:
    reader = _Reader(source, _op_names(tree))
    for function in upgrade_functions(tree):
        reader.statements(function.body, {}, False)
    return reader.operations


def _op_names(tree: ast.Module) -> Set[str]:
    names = {"op"}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "alembic":
            names.update(a.asname or a.name for a in node.names if a.name == "op")
    return names


def literal(node: Optional[ast.AST]):
    return node.value if isinstance(node, ast.Constant) else None


def keyword(call: ast.Call, name: str) -> Optional[ast.AST]:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _call_name(node: ast.AST) -> str:
    """`sa.Column` -> "Column", `text` -> "text"."""
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


class _Reader:
    def __init__(self, source: str, op_names: Set[str]) -> None:
        self.source, self.op_names = source, op_names
        self.operations: List[Operation] = []

    def text(self, node: Optional[ast.AST]) -> str:
        if node is None:
            return ""
        return (ast.get_source_segment(self.source, node) or "").strip()

    def statements(self, body, batches: Dict[str, Optional[str]], autocommit: bool) -> None:
        for statement in body:
            if isinstance(statement, (ast.With, ast.AsyncWith)):
                inner, inner_autocommit = dict(batches), autocommit
                for item in statement.items:
                    call = item.context_expr
                    if isinstance(call, ast.Call) and _call_name(call) == "batch_alter_table" \
                            and isinstance(item.optional_vars, ast.Name):
                        table = literal(call.args[0]) if call.args else literal(keyword(call, "table_name"))
                        inner[item.optional_vars.id] = table
                    elif isinstance(call, ast.Call) and _call_name(call) == "autocommit_block":
                        inner_autocommit = True
                    else:
                        self.calls(call, batches, autocommit)
                self.statements(statement.body, inner, inner_autocommit)
                continue
            nested = [getattr(statement, name, None) for name in ("body", "orelse", "finalbody")]
            nested += [h.body for h in getattr(statement, "handlers", [])]
            nested = [n for n in nested if isinstance(n, list)]
            if nested:
                for part in ("test", "iter", "target"):
                    if getattr(statement, part, None) is not None:
                        self.calls(getattr(statement, part), batches, autocommit)
                for block in nested:
                    self.statements(block, batches, autocommit)
                continue
            self.calls(statement, batches, autocommit)

    def calls(self, node: ast.AST, batches: Dict[str, Optional[str]], autocommit: bool) -> None:
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) \
                    and isinstance(call.func.value, ast.Name):
                owner = call.func.value.id
                if owner in self.op_names:
                    self.operation(call.func.attr, call, None, False, autocommit)
                elif owner in batches:
                    self.operation(call.func.attr, call, batches[owner], True, autocommit)

    def operation(self, name: str, call: ast.Call, batch_table: Optional[str], batch: bool,
                  autocommit: bool) -> None:
        args = list(call.args)

        def arg(index: int, key: str):
            """Positional argument `index` (counted without the table a batch call leaves out), else keyword."""
            node = keyword(call, key)
            if node is None and index < len(args):
                node = args[index]
            return node

        def new(kind: str, **facts) -> Operation:
            op = Operation(kind=kind, line=call.lineno, text=self.text(call)[:200], in_autocommit=autocommit,
                           **facts)
            self.operations.append(op)
            return op

        shift = 0 if batch else 1  # batch_op calls leave out the table name
        table = batch_table if batch else literal(arg(0, "table_name"))

        def flag(key: str) -> bool:
            return literal(keyword(call, key)) is True

        if name == "create_table":
            new("create_table", table=literal(arg(0, "table_name")))
        elif name == "drop_table":
            new("drop_table", table=literal(arg(0, "table_name")))
        elif name == "rename_table":
            new("rename_table", table=literal(arg(0, "old_table_name")), name=literal(arg(1, "new_table_name")))
        elif name == "add_column":
            column = arg(shift, "column")
            if isinstance(column, ast.Call):
                self.column(column, table, new)
        elif name == "drop_column":
            new("drop_column", table=table, column=literal(arg(shift, "column_name")))
        elif name == "alter_column":
            column = literal(arg(shift, "column_name"))
            type_node = keyword(call, "type_")
            if type_node is not None:
                new("alter_type", table=table, column=column, new_type=self.text(type_node),
                    old_type=self.text(keyword(call, "existing_type")) or None)
            if keyword(call, "nullable") is not None and literal(keyword(call, "nullable")) is False:
                new("set_not_null", table=table, column=column)
            if keyword(call, "new_column_name") is not None:
                new("rename_column", table=table, column=column, name=literal(keyword(call, "new_column_name")))
        elif name == "create_index":
            index_table = batch_table if batch else literal(arg(1, "table_name"))
            new("create_index", table=index_table, name=literal(arg(0, "index_name")),
                concurrently=flag("postgresql_concurrently"))
        elif name == "drop_index":
            index_table = batch_table if batch else literal(arg(1, "table_name"))
            new("drop_index", table=index_table, name=literal(arg(0, "index_name")),
                concurrently=flag("postgresql_concurrently"))
        elif name == "create_foreign_key":
            source_table = batch_table if batch else literal(arg(1, "source_table"))
            new("add_foreign_key", table=source_table, name=literal(arg(0, "constraint_name")),
                not_valid=flag("postgresql_not_valid"))
        elif name == "create_check_constraint":
            new("add_check", table=table if batch else literal(arg(1, "table_name")),
                name=literal(arg(0, "constraint_name")), not_valid=flag("postgresql_not_valid"))
        elif name == "create_unique_constraint":
            new("add_unique", table=table if batch else literal(arg(1, "table_name")),
                name=literal(arg(0, "constraint_name")))
        elif name == "create_primary_key":
            new("add_primary_key", table=table if batch else literal(arg(1, "table_name")),
                name=literal(arg(0, "constraint_name")))
        elif name == "execute":
            self.execute(arg(0, "sqltext"), call, autocommit)

    def column(self, column: ast.Call, table: Optional[str], new) -> None:
        """The facts of an `sa.Column(...)` added to a table."""
        name = literal(column.args[0]) if column.args else literal(keyword(column, "name"))
        type_node = column.args[1] if len(column.args) > 1 else keyword(column, "type_")
        type_text = self.text(type_node)
        primary = literal(keyword(column, "primary_key")) is True
        nullable = literal(keyword(column, "nullable"))
        not_null = nullable is False or (primary and nullable is None)
        identity = any(isinstance(a, ast.Call) and _call_name(a) == "Identity" for a in column.args[1:]) \
            or literal(keyword(column, "autoincrement")) is True \
            or re.search(r"serial", type_text, re.I) is not None \
            or (primary and re.search(r"integer|int\b|bigint|smallint", type_text, re.I) is not None)
        default = self.server_default(keyword(column, "server_default"))
        new("add_column", table=table, column=name, not_null=not_null, identity=identity, default=default,
            new_type=type_text or None)
        if literal(keyword(column, "unique")) is True:
            new("add_unique", table=table, column=name)

    def server_default(self, node: Optional[ast.AST]) -> Optional[str]:
        """The default as SQL where it can be told: 'x' -> 'x', text("now()") -> now(), func.now() -> now()."""
        if node is None or (isinstance(node, ast.Constant) and node.value is None):
            return None
        value = literal(node)
        if isinstance(value, str):
            return "'%s'" % value.replace("'", "''")
        if isinstance(node, ast.Call) and _call_name(node) in ("text", "literal_column") and node.args \
                and isinstance(literal(node.args[0]), str):
            return literal(node.args[0])
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "func":
            return "%s(%s)" % (node.func.attr, ", ".join(self.text(a) for a in node.args))
        return self.text(node)

    def execute(self, node: Optional[ast.AST], call: ast.Call, autocommit: bool) -> None:
        sql = literal(node)
        if sql is None and isinstance(node, ast.Call) and _call_name(node) == "text" and node.args:
            sql = literal(node.args[0])
        if isinstance(sql, str):
            self.operations.extend(operations_from_sql(sql, call.lineno, in_autocommit=autocommit))
        else:
            self.operations.append(Operation(kind="unknown_sql", line=call.lineno, text=self.text(call)[:200],
                                             in_autocommit=autocommit))


# ---------------------------------------------------------------------------------------------- SQL reader

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_QUALIFIED = r"(%s(?:\s*\.\s*%s)*)" % (_IDENT, _IDENT)
_CONSTRAINT_WORDS = ("CONSTRAINT", "UNIQUE", "PRIMARY", "FOREIGN", "CHECK", "EXCLUDE")


_TOKENS = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|(\$[A-Za-z_]*\$).*?\1|;", re.S)


def split_statements(sql: str) -> List[str]:
    """Statements of a SQL text, comments removed; semicolons inside quotes or $$ bodies do not split."""
    if not any(c in sql for c in ";-/'\"$"):
        return [" ".join(sql.split())] if sql.strip() else []
    statements, current, position = [], [], 0
    for match in _TOKENS.finditer(sql):
        current.append(sql[position:match.start()])
        token = match.group(0)
        if token == ";":
            statements.append("".join(current))
            current = []
        elif token.startswith("/*"):
            current.append(" ")
        elif not token.startswith("--"):
            current.append(token)
        position = match.end()
    current.append(sql[position:])
    statements.append("".join(current))
    return [" ".join(s.split()) for s in statements if s.strip()]


def identifier(text: str) -> str:
    """The last part of a possibly schema-qualified name, as Postgres folds it."""
    parts = re.findall(_IDENT, text)
    last = parts[-1] if parts else text
    return last[1:-1].replace('""', '"') if last.startswith('"') else last.lower()


def _split_top_level(text: str) -> List[str]:
    parts, depth, current, quote = [], 0, [], None
    for c in text:
        if quote:
            current.append(c)
            if c == quote:
                quote = None
            continue
        if c in ("'", '"'):
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(c)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def operations_from_sql(sql: str, line: int, *, in_autocommit: bool = False) -> List[Operation]:
    """The operations of SQL statements (op.execute, `upgrade --sql`), each attributed to `line`."""
    found: List[Operation] = []
    for statement in split_statements(sql):
        found.extend(_statement(statement, line, in_autocommit))
    return found


_CREATE_TABLE = re.compile(r"CREATE\s+(?:(?:GLOBAL|LOCAL)\s+)?(?:TEMP|TEMPORARY|UNLOGGED\s+)?\s*TABLE\s+"
                           r"(?:IF\s+NOT\s+EXISTS\s+)?" + _QUALIFIED, re.I)
_CREATE_INDEX = re.compile(r"CREATE\s+(UNIQUE\s+)?INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?:(%s)\s+)?ON\s+"
                           r"(?:ONLY\s+)?%s" % (_IDENT, _QUALIFIED), re.I)
_DROP_INDEX = re.compile(r"DROP\s+INDEX\s+(CONCURRENTLY\s+)?(?:IF\s+EXISTS\s+)?(.*)$", re.I)
_DROP_TABLE = re.compile(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(.*)$", re.I)
_ADD_VALUE = re.compile(r"ALTER\s+TYPE\s+%s\s+ADD\s+VALUE\b" % _QUALIFIED, re.I)
_ALTER_TABLE = re.compile(r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?%s\s*\*?\s+(.*)$" % _QUALIFIED, re.I | re.S)
_DDL = re.compile(r"\s*(CREATE|DROP|ALTER)\b", re.I)


def _statement(statement: str, line: int, autocommit: bool) -> List[Operation]:
    if not _DDL.match(statement):  # INSERT, UPDATE, ...: no rule reads them
        return []
    upper = statement.upper()

    def op(kind: str, **facts) -> Operation:
        return Operation(kind=kind, line=line, text=statement[:200], in_autocommit=autocommit, **facts)

    match = _CREATE_TABLE.match(statement)
    if match:
        return [op("create_table", table=identifier(match.group(1)))]
    match = _CREATE_INDEX.match(statement)
    if match:
        return [op("create_index", table=identifier(match.group(4)), concurrently=bool(match.group(2)),
                   name=identifier(match.group(3)) if match.group(3) else None)]
    match = _DROP_INDEX.match(statement)
    if match:
        return [op("drop_index", name=identifier(n), concurrently=bool(match.group(1)))
                for n in _split_top_level(re.sub(r"\s+(CASCADE|RESTRICT)\s*$", "", match.group(2), flags=re.I))]
    match = _DROP_TABLE.match(statement)
    if match:
        return [op("drop_table", table=identifier(n))
                for n in _split_top_level(re.sub(r"\s+(CASCADE|RESTRICT)\s*$", "", match.group(1), flags=re.I))]
    match = _ADD_VALUE.match(statement)
    if match:
        return [op("add_enum_value", name=identifier(match.group(1)))]
    match = _ALTER_TABLE.match(statement)
    if not match or upper.startswith("ALTER TABLE ALL"):
        return []
    table = identifier(match.group(1))
    operations: List[Operation] = []
    for action in _split_top_level(match.group(2)):
        operations.extend(_alter_action(action, table, op))
    return operations


def _alter_action(action: str, table: str, op) -> List[Operation]:
    upper = action.upper()
    match = re.match(r"RENAME\s+TO\s+(%s)" % _IDENT, action, re.I)
    if match:
        return [op("rename_table", table=table, name=identifier(match.group(1)))]
    match = re.match(r"RENAME\s+(?:COLUMN\s+)?(%s)\s+TO\s+(%s)" % (_IDENT, _IDENT), action, re.I)
    if match and match.group(1).upper() != "CONSTRAINT":
        return [op("rename_column", table=table, column=identifier(match.group(1)), name=identifier(match.group(2)))]
    match = re.match(r"ADD\s+(?:CONSTRAINT\s+(%s)\s+)?(FOREIGN\s+KEY|CHECK|UNIQUE|PRIMARY\s+KEY|EXCLUDE)\b"
                     % _IDENT, action, re.I)
    if match:
        kind = {"FOREIGN": "add_foreign_key", "CHECK": "add_check", "UNIQUE": "add_unique",
                "PRIMARY": "add_primary_key", "EXCLUDE": "add_unique"}[match.group(2).split()[0].upper()]
        return [op(kind, table=table, name=identifier(match.group(1)) if match.group(1) else None,
                   not_valid=bool(re.search(r"\bNOT\s+VALID\s*$", upper)),
                   using_index=bool(re.search(r"\bUSING\s+INDEX\b", upper)))]
    match = re.match(r"ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(%s)\s+(.*)$" % _IDENT, action, re.I | re.S)
    if match and match.group(1).upper() not in _CONSTRAINT_WORDS:
        return _add_column(identifier(match.group(1)), match.group(2), table, op)
    match = re.match(r"ALTER\s+(?:COLUMN\s+)?(%s)\s+(?:SET\s+DATA\s+)?TYPE\s+(.*?)(?:\s+USING\s+.*)?$"
                     % _IDENT, action, re.I | re.S)
    if match:
        return [op("alter_type", table=table, column=identifier(match.group(1)),
                   new_type=re.sub(r"\s+COLLATE\s+.*$", "", match.group(2), flags=re.I).strip())]
    match = re.match(r"VALIDATE\s+CONSTRAINT\s+(%s)" % _IDENT, action, re.I)
    if match:
        return [op("validate_constraint", table=table, name=identifier(match.group(1)))]
    match = re.match(r"ALTER\s+(?:COLUMN\s+)?(%s)\s+SET\s+NOT\s+NULL\s*$" % _IDENT, action, re.I)
    if match:
        return [op("set_not_null", table=table, column=identifier(match.group(1)))]
    match = re.match(r"DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(%s)" % _IDENT, action, re.I)
    if match and match.group(1).upper() not in ("CONSTRAINT", "DEFAULT", "NOT", "IDENTITY", "EXPRESSION"):
        return [op("drop_column", table=table, column=identifier(match.group(1)))]
    return []


def _add_column(column: str, definition: str, table: str, op) -> List[Operation]:
    upper = definition.upper()
    default = None
    match = re.search(r"\bDEFAULT\s+(.*?)(?=\s+(?:NOT\s+NULL|NULL|CONSTRAINT|CHECK|UNIQUE|PRIMARY\s+KEY|REFERENCES|"
                      r"GENERATED|COLLATE)\b|$)", definition, re.I | re.S)
    if match:
        default = match.group(1).strip()
    column_type = re.split(r"\s+(?:DEFAULT|NOT|NULL|CONSTRAINT|CHECK|UNIQUE|PRIMARY|REFERENCES|GENERATED|COLLATE)\b",
                           definition, maxsplit=1, flags=re.I)[0].strip()
    identity = bool(re.search(r"\bGENERATED\s+(ALWAYS|BY\s+DEFAULT)\s+AS\s+IDENTITY\b", upper)) \
        or bool(re.match(r"(SMALL|BIG)?SERIAL\b|SERIAL[248]\b", column_type.upper()))
    found = [op("add_column", table=table, column=column, new_type=column_type, default=default, identity=identity,
                not_null=bool(re.search(r"\bNOT\s+NULL\b", upper)) or "PRIMARY KEY" in upper)]
    if re.search(r"\bUNIQUE\b", upper):
        found.append(op("add_unique", table=table, column=column))
    if re.search(r"\bPRIMARY\s+KEY\b", upper):
        found.append(op("add_primary_key", table=table, column=column))
    if re.search(r"\bREFERENCES\b", upper):
        found.append(op("add_foreign_key", table=table, column=column))
    if re.search(r"\bCHECK\s*\(", upper):
        found.append(op("add_check", table=table, column=column))
    return found
