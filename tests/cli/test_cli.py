"""The `spira` command line as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from cli.main import app
from vision.synthetic import make_photo

runner = CliRunner()


def test_help_explains_every_job():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for job in (
        "demo",
        "serve",
        "ingest",
        "embed",
        "stages",
        "train",
        "models",
        "users",
        "assess",
        "profiles",
        "annotate",
    ):
        assert job in result.output
    assert "--jsonl" in runner.invoke(app, ["stages", "--help"]).output


def test_stages_prints_one_json_line_per_image_and_flags_unreadable(
    spira_env, trained_model, tmp_path
):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jpg").write_bytes(make_photo(0, 1, megapixels=0.4))
    (folder / "sub" / "b.png").write_bytes(make_photo(4, 2, megapixels=0.3, fmt="png"))
    (folder / "broken.jpg").write_bytes(b"this is not an image")
    result = runner.invoke(app, ["stages", str(folder)])
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.exit_code == 1  # one file was unreadable
    by_name = {line["path"].rsplit("/", 1)[-1]: line for line in lines}
    assert set(by_name) == {"a.jpg", "b.png", "broken.jpg"}
    assert "error" in by_name["broken.jpg"] and "text" in by_name["broken.jpg"]["error"].lower()
    for name in ("a.jpg", "b.png"):
        line = by_name[name]
        assert len(line["stage_probs"]) == 5 and abs(sum(line["stage_probs"]) - 1) < 1e-4
        assert 0 <= line["stage"] <= 4 and line["top_stage"] in range(5)
        assert line["model"] == trained_model
    assert by_name["b.png"]["stage"] > by_name["a.jpg"]["stage"]  # a scene is later than a scribble


def test_stages_scans_for_large_faces_but_not_for_small_ones(
    spira_env, trained_model, tmp_path, monkeypatch
):
    """`spira stages` stores nothing, so the small-face scan that protects stored images is left
    out; the whole-photo BlazeFace pass stays (a large face is scored as its blurred copy)."""
    from vision import faces

    calls: list[str] = []
    real_detect = faces.detect_faces
    monkeypatch.setattr(faces, "find_small_faces", lambda *a, **k: calls.append("small") or [])
    monkeypatch.setattr(
        faces, "detect_faces", lambda *a, **k: calls.append("large") or real_detect(*a, **k)
    )
    photo = tmp_path / "a.jpg"
    photo.write_bytes(make_photo(2, 5, megapixels=0.3))
    result = runner.invoke(app, ["stages", str(photo)])
    assert result.exit_code == 0, result.output
    assert calls == ["large"]


def test_stages_folder_matches_one_photo_at_a_time(spira_env, trained_model, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.jpg").write_bytes(make_photo(i % 5, 10 + i, megapixels=0.3))
    together = runner.invoke(app, ["stages", str(folder)])
    assert together.exit_code == 0
    lines = [json.loads(line) for line in together.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(folder / f"{i}.jpg") for i in range(5)]
    for line in lines:
        alone = runner.invoke(app, ["stages", line["path"]])
        assert alone.exit_code == 0
        (single,) = [json.loads(x) for x in alone.stdout.splitlines()]
        assert single["path"] == line["path"] and single["model"] == line["model"]
        assert single["stage_probs"] == pytest.approx(line["stage_probs"], abs=1e-5)
        assert single["drawing_age"] == pytest.approx(line["drawing_age"], abs=0.011)


@pytest.mark.parametrize("args", [["--help"], ["stages", "--help"], ["ingest", "--help"]])
def test_help_imports_no_heavy_module(args):
    """`spira --help` answers in a blink: building the help imports no model, web or ML library."""
    heavy = ["torch", "timm", "fastapi", "sklearn", "openvino", "onnxruntime", "sqlalchemy"]
    code = (
        "import sys\n"
        "from cli.main import app\n"
        f"try:\n    app({args!r})\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {heavy!r} if m in sys.modules])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert "Usage" in out
    assert out.strip().splitlines()[-1] == "LOADED []"


def test_stages_with_an_exported_graph_imports_neither_torch_nor_timm_nor_a_database(
    spira_env, trained_model, tmp_path
):
    """A cold `spira stages` runs the promoted model's exported graph (OpenVINO) on CPU: torch and
    timm (seconds to import) stay out of the process, and so does the database code (it reads
    the model's files only)."""
    photo = tmp_path / "a.jpg"
    photo.write_bytes(make_photo(2, 5, megapixels=0.3))
    assert runner.invoke(app, ["stages", str(photo)]).exit_code == 0  # graph exported (if not yet)
    code = (
        "import sys\n"
        "from cli.main import app\n"
        f"try:\n    app(['stages', {str(photo)!r}])\nexcept SystemExit as e:\n    assert not e.code\n"
        "print('LOADED', [m for m in ('torch', 'timm', 'sqlalchemy') if m in sys.modules])\n"
    )
    env = {**os.environ, "SPIRA_DEVICE": "cpu"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[0])["model"] == trained_model
    assert lines[-1] == "LOADED []"


def test_stages_on_a_fresh_install_trains_the_default_model(tmp_path, monkeypatch):
    from cli import stages
    from core.config import get_settings
    from training.model_files import promoted_version_from_files

    monkeypatch.setenv("SPIRA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SPIRA_MODELS_DIR", str(tmp_path / "empty-models"))
    monkeypatch.setattr(stages, "DEFAULT_SYNTHETIC_N", 40)  # the full default takes minutes
    (tmp_path / "a.jpg").write_bytes(make_photo(1, 3, megapixels=0.3))
    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["stages", str(tmp_path / "a.jpg")])
        promoted = promoted_version_from_files()
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "training the default synthetic model" in result.output
    (line,) = [json.loads(x) for x in result.stdout.splitlines()]
    assert promoted and line["model"] == promoted and len(line["stage_probs"]) == 5


def test_users_add_validates_and_scopes(spira_env):
    from core.db import migrate

    migrate()
    bad = runner.invoke(
        app, ["users", "add", "--username", "x", "--password", "short", "--role", "educator"]
    )
    assert bad.exit_code == 2 and "8 characters" in bad.output
    runner.invoke(app, ["demo", "--help"])
    from cli.demo import seed_structure
    from core.db import session_factory

    with session_factory()() as s:
        seed_structure(s)
        s.commit()
    nounit = runner.invoke(
        app,
        [
            "users",
            "add",
            "--username",
            "x",
            "--password",
            "long-enough",
            "--role",
            "educator",
            "--unit",
            "Atlantis",
        ],
    )
    assert nounit.exit_code == 2 and "Atlantis" in nounit.output and "Olympia" in nounit.output
    ok = runner.invoke(
        app,
        [
            "users",
            "add",
            "--username",
            "x",
            "--password",
            "long-enough",
            "--role",
            "educator",
            "--unit",
            "Olympia",
        ],
    )
    assert ok.exit_code == 0 and "Olympia" in ok.output
    assert "x\teducator\tOlympia" in runner.invoke(app, ["users", "list"]).stdout


def test_ingest_folder_reports_accepted_duplicate_and_rejected(spira_env, tmp_path):
    from cli.demo import seed_structure
    from core.db import migrate, session_factory

    migrate()
    with session_factory()() as s:
        seed_structure(s)
        s.commit()
    folder = tmp_path / "in"
    folder.mkdir()
    photo = make_photo(2, 5, megapixels=0.4)
    (folder / "one.jpg").write_bytes(photo)
    (folder / "copy-of-one.jpg").write_bytes(photo)
    (folder / "notes.txt").write_bytes(b"hello")
    args = [
        "ingest",
        str(folder),
        "--unit",
        "Olympia",
        "--group",
        "Lingonet",
        "--activity",
        "teckning",
        "--age-band",
        "4-5",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "accepted 1, duplicate 1, rejected 1" in result.output and "notes.txt" in result.output
    again = runner.invoke(app, args)
    assert "accepted 0, duplicate 2, rejected 1" in again.output


def test_ingest_prepares_photos_on_several_threads_and_stores_them_in_file_order(
    spira_env, tmp_path
):
    from sqlalchemy import select

    from cli.demo import seed_structure
    from core.db import migrate, session_factory
    from core.models import Photo

    migrate()
    with session_factory()() as s:
        seed_structure(s)
        s.commit()
    folder = tmp_path / "in"
    folder.mkdir()
    photos = [make_photo(i % 5, 20 + i, megapixels=0.3) for i in range(5)]
    for i, photo in enumerate(photos):
        (folder / f"{i}.jpg").write_bytes(photo)
    (folder / "5-copy-of-1.jpg").write_bytes(photos[1])  # a duplicate prepared at the same time
    (folder / "6-broken.jpg").write_bytes(photos[2][:2000])
    args = ["ingest", str(folder), "--unit", "Olympia", "--group", "Lingonet"]
    args += ["--activity", "teckning", "--age-band", "4-5", "--workers", "3"]
    # what is said about the photos is checked before any photo is read
    bad = runner.invoke(app, [*args, "--date", "2026-13-01"])
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    bad_band = runner.invoke(app, [a if a != "4-5" else "9-12" for a in args])
    assert bad_band.exit_code == 2 and "9-12" in bad_band.output
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        "accepted 5, duplicate 1, rejected 1" in result.output and "6-broken.jpg" in result.output
    )
    with session_factory()() as s:
        widths = s.scalars(select(Photo.width).order_by(Photo.created_at)).all()
    # stored one at a time in file order, whatever order the threads finished in
    from vision.ingest import ingest

    assert list(widths) == [ingest(p).image.shape[1] for p in photos]


@pytest.mark.slow
def test_demo_seeds_units_and_scores_photos_through_the_pipeline(
    spira_env, trained_model, monkeypatch
):
    import uvicorn
    from sqlalchemy import func, select

    from core.db import session_factory
    from core.models import Photo, ResponseSheet, StageEstimate, Unit, UnitContext, User

    result = runner.invoke(app, ["demo", "--no-serve", "--photos-per-term", "2"])
    assert result.exit_code == 0, result.output
    assert "rektor.olympia" in result.output  # users printed once with their passwords
    with session_factory()() as s:
        assert s.scalar(select(func.count()).select_from(Unit)) == 8
        n_photos = s.scalar(select(func.count()).select_from(Photo))
        assert n_photos == 8 * 2 * 2 * 2
        assert (
            s.scalar(select(func.count()).select_from(Photo).where(Photo.status == "done"))
            == n_photos
        )
        assert s.scalar(select(func.count()).select_from(StageEstimate)) == n_photos
        assert s.scalar(select(func.count()).select_from(UnitContext)) == 16
        assert s.scalar(select(func.count()).select_from(ResponseSheet)) > 500
        assert s.scalar(select(func.count()).select_from(User)) == 18
    # `spira demo` without --no-serve (what `make demo` runs) seeds nothing twice, then serves
    served: list[tuple] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    again = runner.invoke(app, ["demo", "--photos-per-term", "2", "--port", "8123"])
    assert again.exit_code == 0, again.output
    assert "rektor.olympia" not in again.output  # nothing seeded twice
    [(served_app, options)] = served
    assert callable(served_app) and options["port"] == 8123 and "workers" not in options


def test_serve_with_several_worker_processes_answers_and_stops(spira_env, tmp_path):
    import os
    import shutil
    import subprocess
    import sys
    import time

    import httpx

    from tests.web.conftest import _free_port

    port = _free_port()
    spira = shutil.which("spira", path=os.path.dirname(sys.executable))
    assert spira is not None
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [spira, "serve", "--port", str(port), "--workers", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=os.environ | {"SPIRA_WORKER_ENABLED": "true"},
        )
    try:
        deadline = time.monotonic() + 90
        answers: set[int] = set()
        while len(answers) < 1:
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(log.read_text()[-3000:])
            try:
                answers.add(httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code)
            except httpx.HTTPError:
                time.sleep(0.3)
        assert answers == {200}
        # two server processes under the one the command started
        children = (
            open(f"/proc/{server.pid}/task/{server.pid}/children").read().split()  # noqa: SIM115
        )
        assert len(children) >= 2, log.read_text()[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "Traceback" not in log.read_text()
