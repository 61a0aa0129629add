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
    data = "/var/lib/postgresql/data"  # volumes as compose's model gives them (long syntax, paths resolved)
    project = ComposeProject(directory=tmp_path, files=[tmp_path / "compose.yaml"], name="shop", services={
        "db": {"image": "postgres:15", "volumes": [{"type": "volume", "source": "dbdata", "target": data}]},
        "pg_on_host": {"image": "postgres:15",
                       "volumes": [{"type": "bind", "source": str(tmp_path / "pgdata"), "target": data}]},
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


def _project(directory, name="shop", files=("docker-compose.yml",)):
    from toolkit.project import ComposeProject

    return ComposeProject(directory=directory, files=[directory / f for f in files], name=name, services={})


def test_snapshots_belong_to_their_checkout(tmp_path, monkeypatch):
    """A snapshot recorded for another folder is never listed here; one from before devtool recorded the folder
    belongs to the state folder it lies in (keyed by folder and project name)."""
    from toolkit.snapshots import COPY, Snapshot, _write, list_snapshots

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    mine, theirs = tmp_path / "work" / "shop", tmp_path / "review" / "shop"
    ctx = _Ctx(_project(mine))
    for name, checkout in (("mine", str(mine)), ("unrecorded", None), ("copied-in", str(theirs))):
        _write(ctx, Snapshot(name=name, kind=COPY, created="2026-11-24T05:10:00+00:00", reason="manual",
                             project="shop", service="backend", checkout=checkout))
    assert sorted(s.name for s in list_snapshots(ctx)) == ["mine", "unrecorded"]
    assert list_snapshots(_Ctx(_project(theirs))) == []


class _Out:
    def __init__(self):
        self.lines = []

    def info(self, message):
        self.lines.append(message)

    warn = info


def _legacy_dump(tmp_path, name):
    folder = tmp_path / "state" / "devtool" / "snapshots" / "shop"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.dump").write_bytes(b"PGDMP")
    (folder / f"{name}.json").write_text(json.dumps({
        "name": name, "created": "2026-11-24T05:10:00+00:00", "reason": "manual", "database": "shop",
        "revision": ["abc"], "size": 5, "path": str(folder / f"{name}.dump"), "project": "shop"}))
    return folder


def test_dumps_of_the_first_format_move_into_the_one_checkout_of_their_name(tmp_path, monkeypatch):
    from toolkit.snapshots import list_snapshots

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    legacy = _legacy_dump(tmp_path, "old")
    mine = tmp_path / "work" / "shop"
    mine.mkdir(parents=True)
    ctx = _Ctx(_project(mine))
    ctx.out = _Out()
    (found,) = list_snapshots(ctx)
    assert found.checkout == str(mine) and "/projects/shop-" in found.path and open(found.path, "rb").read() == b"PGDMP"
    assert not legacy.exists() and "Moved 1 snapshot(s)" in ctx.out.lines[0]
    assert list_snapshots(ctx) == [found]  # moved once, read as any other


def test_dumps_of_the_first_format_stay_put_when_two_checkouts_have_their_name(tmp_path, monkeypatch):
    from toolkit.snapshots import list_snapshots
    from toolkit.state import project_state

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    legacy = _legacy_dump(tmp_path, "old")
    mine, theirs = tmp_path / "work" / "shop", tmp_path / "review" / "shop"
    for folder in (mine, theirs):
        folder.mkdir(parents=True)
    project_state(_project(theirs))  # devtool has worked in the other one too
    ctx = _Ctx(_project(mine))
    ctx.out = _Out()
    assert list_snapshots(ctx) == []
    assert (legacy / "old.dump").is_file() and str(theirs) in ctx.out.lines[0]


class _Container:
    def __init__(self, service, directory, files):
        self.name, self.labels = f"shop-{service}-1", {
            "com.docker.compose.service": service, "com.docker.compose.project.working_dir": str(directory),
            "com.docker.compose.project.config_files": ",".join(str(f) for f in files)}


def test_another_checkouts_containers_are_refused_with_the_fix(tmp_path):
    from toolkit.checkouts import ensure_own
    from toolkit.errors import DevtoolError

    mine, theirs = tmp_path / "review" / "shop", tmp_path / "work" / "shop"
    project = _project(mine)
    ours = [_Container(s, mine, [mine / "docker-compose.yml"]) for s in ("backend", "db")]
    assert ensure_own(project, ours) == ours
    assert ensure_own(project, [_Container("backend", mine, [mine / "docker-compose.yml",
                                                                mine / "docker-compose.override.yml"])])
    assert ensure_own(project, [_Container("backend", "", [])])  # no labels to tell: not compose's
    with pytest.raises(DevtoolError) as raised:
        ensure_own(project, [_Container(s, theirs, [theirs / "docker-compose.yml"]) for s in ("db", "backend")])
    error = raised.value
    assert error.exit_code == 31
    assert error.message == (f"Project name shop is taken by another checkout: its containers (backend, db) come from "
                             f"{theirs}, not from {mine}; nothing was started, recreated or migrated.")
    assert "devtool -p review-shop" in error.hint and "COMPOSE_PROJECT_NAME=review-shop" in error.hint
    assert "name: review-shop" in error.hint and error.data["other_directory"] == str(theirs)


def test_one_folder_with_other_compose_files_is_another_stack(tmp_path):
    from toolkit.checkouts import ensure_own
    from toolkit.errors import DevtoolError

    project = _project(tmp_path)
    with pytest.raises(DevtoolError) as raised:
        ensure_own(project, [_Container("backend", tmp_path, [tmp_path / "ci.yml"])])
    assert f"compose file(s) {tmp_path / 'ci.yml'}" in raised.value.message


def test_a_symlinked_folder_is_the_same_checkout(tmp_path):
    from toolkit.checkouts import ensure_own

    real = tmp_path / "shop"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    link = tmp_path / "link"
    containers = [_Container("backend", link, [link / "docker-compose.yml"])]
    assert ensure_own(_project(real), containers) == containers


def test_the_checkout_last_seen_under_a_name_is_remembered(tmp_path, monkeypatch):
    from toolkit.state import name_owner, record_name_owner

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert name_owner("shop") is None
    record_name_owner(_project(tmp_path / "work" / "shop"))
    assert name_owner("shop") == str(tmp_path / "work" / "shop")
    record_name_owner(_project(tmp_path / "review" / "shop"))
    assert name_owner("shop") == str(tmp_path / "review" / "shop")
    (tmp_path / "state" / "devtool" / "names" / "shop.json").write_text("[not json")
    assert name_owner("shop") is None
