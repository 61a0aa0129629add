"""Snapshot logic that needs no engine: reading what a dump says about itself, metadata of both formats, names,
which snapshots `down --volumes` deletes, and `snapshot list --all` / `prune --orphans` on devtool's state."""

from __future__ import annotations

import json
import pytest



def devtool(*args: str, env: dict | None = None):
    """devtool in this process (no engine needed): exit code and output, like a user's run."""
    from typer.testing import CliRunner

    from toolkit.cli import app

    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200", **(env or {})})

READ_OUTPUT = """@@header
;
; Archive created at 2026-11-25 17:39:37 UTC
;     dbname: devtool_snap_1a2b3c4d5e6f
;     Dumped from database version: 15.20 (Debian 15.20-0+deb12u1)
;     Dumped by pg_dump version: 15.20 (Debian 15.20-0+deb12u1)
;
216; 1259 16447 TABLE public alembic_version devtool
215; 1259 16439 TABLE public users devtool
3350; 0 16447 TABLE DATA public alembic_version devtool
@@comment
--
-- Name: DATABASE devtool_snap_1a2b3c4d5e6f; Type: COMMENT; Schema: -; Owner: devtool
--

COMMENT ON DATABASE devtool_snap_1a2b3c4d5e6f IS 'devtool-snapshot {"format": 2, "name": "it''s mine", "devtool": "0.1.0"}';

@@revision
SET client_encoding = 'UTF8';
COPY public.alembic_version (version_num) FROM stdin;
bbb222
aaa111
\\.
"""


def test_what_a_dump_says_about_itself():
    from toolkit.dialects.postgres import parse_read_output

    info = parse_read_output(READ_OUTPUT)
    assert info.server_version == "15.20 (Debian 15.20-0+deb12u1)"
    assert info.metadata == {"format": 2, "name": "it's mine", "devtool": "0.1.0"}
    assert info.revision == ["aaa111", "bbb222"]

    plain = parse_read_output("@@header\n;     Dumped from database version: 16.1\n@@comment\n@@revision\n(none)\n")
    assert (plain.metadata, plain.revision, plain.server_version) == (None, None, "16.1")


@pytest.mark.parametrize("version, major", [("15.20 (Debian 15.20-0+deb12u1)", "15"), ("9.6.24", "9.6"),
                                            ("16beta1", "16"), (None, None), ("", None)])
def test_server_major_version(version, major):
    from toolkit.dialects.postgres import major as server_major

    assert server_major(version) == major


def test_metadata_of_the_first_format_still_reads():
    from toolkit.snapshots import DUMP, Snapshot

    old = {"name": "before", "created": "2026-11-24T05:10:00+00:00", "reason": "manual", "database": "shop",
           "revision": ["310ddeb54bfc"], "size": 2345, "seconds": 0.21, "path": "/x/before.dump"}
    snapshot = Snapshot.from_json(old)
    assert (snapshot.kind, snapshot.service, snapshot.database, snapshot.revision) == (DUMP, None, "shop",
                                                                                      ["310ddeb54bfc"])
    assert Snapshot.from_json(json.loads(json.dumps(snapshot.as_json()))) == snapshot
    document = snapshot.as_json()
    assert {"name", "kind", "created", "reason", "service", "database", "revision", "size", "age_seconds",
            "databases", "path"} <= set(document)


@pytest.mark.parametrize("name, ok", [("before-refactor", True), ("a.b_c-1", True), ("list", False),
                                      ("import", False), ("../etc", False), ("-x", False), ("x" * 65, False)])
def test_snapshot_names(name, ok):
    from toolkit.errors import DevtoolError
    from toolkit.snapshots import validate_name

    if ok:
        validate_name(name)
    else:
        with pytest.raises(DevtoolError) as raised:
            validate_name(name)
        assert raised.value.exit_code == 2


class _Ctx:
    def __init__(self, project):
        from toolkit.context import Settings

        self.project, self.settings = project, Settings()


def test_down_volumes_deletes_the_copies_of_a_server_whose_data_is_in_a_volume(tmp_path, monkeypatch):
    from toolkit.agent.protocol import Database, SnapshotDatabase
    from toolkit.project import ComposeProject
    from toolkit.snapshots import COPY, DUMP, Snapshot, _write, in_volumes

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    project = ComposeProject(directory=tmp_path, files=[tmp_path / "compose.yaml"], name="shop", services={
        "db": {"image": "postgres:15", "volumes": ["dbdata:/var/lib/postgresql/data"]},
        "pg_on_host": {"image": "postgres:15", "volumes": ["./pgdata:/var/lib/postgresql/data"]},
        "backend": {}})
    ctx = _Ctx(project)

    def snapshot(name, kind, db_service, path=None):
        made = Snapshot(name=name, kind=kind, created="2026-11-24T05:10:00+00:00", reason="manual", project="shop",
                        service="backend", db_service=db_service, path=path,
                        databases=[SnapshotDatabase(database=Database(backend="postgresql", name="shop"))])
        _write(ctx, made)

    dump = tmp_path / "kept.dump"
    dump.write_bytes(b"PGDMP")
    snapshot("in-volume", COPY, "db")
    snapshot("on-host", COPY, "pg_on_host")
    snapshot("outside", COPY, None)
    snapshot("a-file", DUMP, "db", path=str(dump))
    assert [s.name for s in in_volumes(ctx)] == ["in-volume"]


def test_list_all_and_prune_orphans(tmp_path):
    state = tmp_path / "state" / "devtool" / "projects"
    alive_dir = tmp_path / "alive"
    alive_dir.mkdir()
    for folder, directory in (("alive-1234567890", alive_dir), ("gone-0987654321", tmp_path / "deleted")):
        (state / folder / "snapshots").mkdir(parents=True)
        (state / folder / "project.json").write_text(json.dumps({"name": folder.split("-")[0],
                                                                 "directory": str(directory)}))
        dump = state / folder / "snapshots" / "s1.dump"
        dump.write_bytes(b"PGDMP")
        (state / folder / "snapshots" / "s1.json").write_text(json.dumps({
            "format": 2, "name": "s1", "kind": "dump", "created": "2026-11-24T05:10:00+00:00", "reason": "manual",
            "project": folder, "service": "backend", "path": str(dump), "size": 5,
            "databases": [{"database": {"backend": "postgresql", "name": "shop"}, "revision": ["abc"], "size": 5}]}))
    env = {"XDG_STATE_HOME": str(tmp_path / "state")}

    listed = devtool("snapshot", "list", "--all", "--json", env=env)
    assert listed.exit_code == 0, listed.output
    projects = {p["project"]: p for p in json.loads(listed.stdout)}
    assert projects["alive"]["exists"] is True and projects["gone"]["exists"] is False
    assert [s["name"] for s in projects["gone"]["snapshots"]] == ["s1"]
    table = devtool("snapshot", "list", "--all", env=env)
    assert "directory gone: `devtool snapshot prune --orphans` removes this" in table.stdout

    pruned = devtool("snapshot", "prune", "--orphans", env=env)
    assert pruned.exit_code == 0, pruned.output
    assert f"gone ({tmp_path / 'deleted'})" in pruned.stdout
    assert not (state / "gone-0987654321").exists()
    assert (state / "alive-1234567890" / "snapshots" / "s1.dump").is_file()


@pytest.mark.parametrize("subcommand", ["take", "list", "delete", "prune", "export", "import"])
def test_every_snapshot_subcommand_has_help_with_an_example(subcommand):
    result = devtool("snapshot", subcommand, "--help")
    assert result.exit_code == 0 and "Example" in result.output
