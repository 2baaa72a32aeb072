"""Pages against hostile input, through AppTest: a bad saved run is one error naming the file
and the rest of the page and session keep working; user text (file, column and run names)
is shown as text, never as Markdown; one-feature CSVs work on the Train page; a tab that
outlived a server restart is told so."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from markdown_text import active, shown
from streamlit.testing.v1 import AppTest
from test_hostile_files import DROP, bomb_run, edit, members, nested, raw_zip, stored

from landscape.data import upload
from landscape.data.config import Config
from landscape.storage import datastore
from landscape.storage import formats as store
from landscape.training.loop import train
from landscape.ui import kept
from landscape.ui import landscape_page as lp_ui
from landscape.ui import runs as ui_runs

ROOT = Path(__file__).resolve().parents[1]
LANDSCAPE = str(ROOT / "landscape/ui/server/app_pages" / "loss_landscape.py")
TRAIN = str(ROOT / "landscape/ui/server/app_pages" / "train.py")
EVIL_LINK = "[re-login](http://example.invalid)"
EVIL_IMAGE = "![x](http://example.invalid/x.png)"
TEXT_KINDS = ("markdown", "caption", "error", "warning", "info", "success", "subheader", "title")


@pytest.fixture(scope="module")
def tiny():
    return train(Config(n_samples=100, epochs=3, width=4))


@pytest.fixture(scope="module")
def good(tiny):
    return store.run_to_bytes(tiny)


@pytest.fixture(autouse=True)
def clean():
    lp_ui.clear()
    ui_runs.run_cache().clear()
    yield
    ui_runs.run_cache().clear()


def page(path: str, *runs) -> AppTest:
    at = AppTest.from_file(path, default_timeout=120)
    if runs:
        at.session_state[ui_runs._SESSION_KEY] = {r.name: r for r in runs}
    return settle(at)


def settle(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, at.exception
    return at


def errors(at) -> list[str]:
    return [shown(e.value) for e in at.error]


def no_live_markup(at) -> None:
    """No element's Markdown renders to a link or an image of the hostile host."""
    for kind in TEXT_KINDS:
        for el in getattr(at, kind):
            if "example.invalid" in str(el.value) or "example.invalid" in shown(el.value):
                assert not active(el.value), (kind, el.value)


# ----------------------------------------------------------------------------- Landscape page


@functools.cache
def hostile_runs(good: bytes) -> dict[str, bytes]:
    m = members(good)
    n = len(m["history/epoch"])
    crc = stored(m)
    crc[-1] = (*crc[-1][:4], crc[-1][4][:-1] + bytes([crc[-1][4][-1] ^ 0xFF]))
    return {
        "bomb": bomb_run(good, 512 * 2**20),
        "truncated": good[: len(good) // 2],
        "crc": raw_zip(crc),
        "empty": b"",
        "meta_list": edit(good, meta_json=np.frombuffer(b"[]", np.uint8)),
        "config_list": edit(good, config_json=np.frombuffer(b"[]", np.uint8)),
        "missing_key": edit(good, meta={"n_params": DROP}),
        "deep": edit(good, meta_json=nested(50_000)),
        "weight_shape": edit(good, state__0=np.zeros((3, 3), np.float32)),
        "empty_history": edit(good, **{f"history__{k}": np.zeros(0) for k in store._HISTORY_KEYS}),
        "diverged_null": edit(
            good, meta={"diverged": True, "diverged_epoch": n, "last_finite_loss": None}
        ),
        "future": edit(good, meta={"format": "landscape-run/9"}),
    }


CASES = [
    "bomb", "truncated", "crc", "empty", "meta_list", "config_list", "missing_key", "deep",
    "weight_shape", "empty_history", "diverged_null", "future",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_landscape_page_keeps_working_after_a_hostile_saved_run(case, tiny, good):
    at = page(LANDSCAPE, tiny)
    at.file_uploader(key="lp_upload").upload(f"{case}.npz", hostile_runs(good)[case])
    settle(at)
    (msg,) = errors(at)
    assert f"{case}.npz" in msg and "Traceback" not in msg and "allow_pickle" not in msg
    subheaders = [s.value for s in at.subheader]
    assert "2 · The slice" in subheaders and "3 · The picture" in subheaders
    assert at.selectbox(key="run__pick").value == datastore.run_id(tiny.config)  # still there
    assert not at.button(key="lp_go").disabled
    assert list(at.session_state[ui_runs._SESSION_KEY]) == [tiny.name]


def test_after_a_hostile_file_the_session_still_computes(tiny, good):
    at = page(LANDSCAPE, tiny)
    at.file_uploader(key="lp_upload").upload("bomb.npz", hostile_runs(good)["bomb"])
    settle(at)
    at.radio(key="lp_dim").set_value("1D line")
    settle(at)
    at.slider(key="lp_nx1").set_value(5)
    at.button(key="lp_go").click()
    settle(at)
    assert at.get("plotly_chart") and len(errors(at)) == 1  # the file's error is still shown


def test_run_named_like_a_link_is_shown_as_text(tiny, good):
    b = edit(good, meta={"name": EVIL_LINK})
    at = page(LANDSCAPE)
    at.file_uploader(key="lp_upload").upload(f"{EVIL_IMAGE}.npz", b)
    settle(at)
    assert at.selectbox(key="run__pick").options[0].startswith(EVIL_LINK)  # options: plain text
    at.radio(key="lp_dim").set_value("1D line")
    settle(at)
    at.slider(key="lp_nx1").set_value(5)
    at.button(key="lp_go").click()
    settle(at)
    title = [m for m in at.markdown if "example.invalid" in shown(m.value)]
    assert title and shown(title[0].value).startswith(EVIL_LINK)
    no_live_markup(at)


def test_file_named_like_an_image_in_an_error_is_text(good):
    at = page(LANDSCAPE)
    at.file_uploader(key="lp_upload").upload(f"{EVIL_IMAGE}.npz", b"junk")
    settle(at)
    (msg,) = errors(at)
    assert msg.startswith(f"file '{EVIL_IMAGE}.npz'")
    no_live_markup(at)


# ----------------------------------------------------------------------------- Train page


def csv(header: str, rows: list[str]) -> bytes:
    return (header + "\n" + "\n".join(rows)).encode()


def upload_csv(at: AppTest, name: str, raw: bytes) -> AppTest:
    at.selectbox(key="tr_dataset").set_value("__upload__")
    settle(at)
    at.file_uploader(key="tr_upload_file").upload(name, raw)
    return settle(at)


def train_small(at: AppTest) -> AppTest:
    at.slider(key="tr_epochs").set_value(3)
    at.button[[b.label for b in at.button].index("Train")].click()
    return settle(at)


def figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


X = np.random.default_rng(0).normal(size=60)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_one_feature_csv_works_everywhere_on_the_train_page(task):
    if task == "classification":
        raw = csv("x,label", [f"{a:.4f},{int(a > 0)}" for a in X])
    else:
        raw = csv("x,price", [f"{a:.4f},{1000 * a + 5e4:.2f}" for a in X])
    at = upload_csv(page(TRAIN), "one.csv", raw)
    assert not at.error, errors(at)
    preview = [f for f in figures(at) if "training points" in f["layout"]["title"]["text"]]
    assert preview and preview[0]["layout"]["xaxis"]["title"]["text"] == "x"
    train_small(at)
    assert not at.error, errors(at)
    titles = [f["layout"].get("title", {}).get("text", "") for f in figures(at)]
    want = "Class probabilities" if task == "classification" else "Fitted function"
    assert want in titles, titles
    assert at.button(key="tr_delete")  # the run list and its Delete button
    # Issue 25: the picture is in standardised x, and says so
    picture = next(f for f in figures(at) if f["layout"].get("title", {}).get("text") == want)
    assert picture["layout"]["xaxis"]["title"]["text"] == "x (standardised)"
    assert any("standardised units" in shown(c.value) for c in at.caption)


def test_two_feature_csv_gets_decision_regions():
    """Issue 25: a 2-feature CSV run got no decision-region plot (moons does)."""
    raw = csv("a,b,label", [f"{a:.4f},{-a / 2:.4f},{int(a > 0)}" for a in X])
    at = upload_csv(page(TRAIN), "two.csv", raw)
    train_small(at)
    assert not at.error, errors(at)
    regions = [
        f for f in figures(at) if f["layout"].get("title", {}).get("text") == "Decision regions"
    ]
    assert regions, "no decision-region plot"
    layout = regions[0]["layout"]
    assert (layout["xaxis"]["title"]["text"], layout["yaxis"]["title"]["text"]) == (
        "a (standardised)",
        "b (standardised)",
    )


def test_value_beyond_float32_is_rejected_naming_column_and_row():
    rows = [f"{a:.4f},{'1e39' if i == 4 else f'{a:.3f}'},{int(a > 0)}" for i, a in enumerate(X)]
    at = upload_csv(page(TRAIN), "big.csv", csv("a,b,label", rows))
    (msg,) = errors(at)
    assert "column 'b'" in msg and "'1e39' in data row 5" in msg and "32-bit" in msg


def test_utf16_csv_with_bom_is_read():
    text = "x1,x2,label\n" + "\n".join(f"{a:.3f},{-a:.3f},{int(a > 0)}" for a in X)
    at = upload_csv(page(TRAIN), "u16.csv", text.encode("utf-16"))
    assert not at.error, errors(at)
    assert any("60 rows" in shown(c.value) for c in at.caption)


def test_column_named_like_an_image_is_text_everywhere():
    rows = [f"{a:.4f},{-a:.4f},{int(a > 0)}" for a in X]
    raw = csv(f'"{EVIL_IMAGE}",x2,label', rows)
    at = upload_csv(page(TRAIN), f"{EVIL_LINK}.csv", raw)
    target = next(s for s in at.selectbox if s.label == "Target column")
    assert EVIL_IMAGE in target.options
    caption = [c for c in at.caption if "example.invalid" in shown(c.value)]
    assert caption and shown(caption[0].value).startswith(f"{EVIL_LINK}.csv: 60 rows")
    no_live_markup(at)
    # the column name in an error message (a text cell in a feature column) is text too
    bad = csv(f'"{EVIL_IMAGE}",x2,label', [*rows[:-1], "oops,1,0"])
    at.file_uploader(key="tr_upload_file").upload("bad.csv", bad)
    settle(at)
    (msg,) = errors(at)
    assert f"column '{EVIL_IMAGE}'" in msg
    no_live_markup(at)


def test_train_page_with_a_run_whose_data_is_gone_keeps_its_delete_button():
    name = upload.register(upload.parse_csv(csv("x,label", [f"{a},{int(a > 0)}" for a in X])))
    r = train(Config(dataset=name, n_samples=60, epochs=2, width=4))
    upload.clear()  # evicted from the bounded registry
    at = page(TRAIN, r)
    assert any(name in e and "on the server" in e for e in errors(at))
    assert any(s.value.startswith("3 · This session's runs (1)") for s in at.subheader)
    at.button(key="tr_delete").click()
    settle(at)
    assert not at.session_state[ui_runs._SESSION_KEY] and not at.error


def test_run_named_like_a_link_on_the_train_page(tiny):
    r = store.run_from_bytes(edit(store.run_to_bytes(tiny), meta={"name": EVIL_LINK}))
    at = page(TRAIN, r)
    assert at.selectbox(key="tr_show").value == datastore.run_id(r.config)
    assert at.selectbox(key="tr_show").options[0].startswith(EVIL_LINK)  # options: plain text
    no_live_markup(at)
    overlay = [f for f in figures(at) if any(t.get("name") for t in f["data"])]
    for f in overlay:  # legends show the name with its brackets, not a Plotly <a> link
        assert all("<a" not in str(t.get("name")) for t in f["data"])


# ----------------------------------------------------------------------------- restarts


@pytest.mark.parametrize("data_folder", [True, False])
def test_tab_from_a_previous_server_is_told_and_can_start_afresh(data_folder, monkeypatch):
    if not data_folder:  # a server without its data folder: the runs really are gone
        monkeypatch.setattr(kept, "store", lambda: None)
    at = AppTest.from_file(str(ROOT / "landscape/ui/server/lab.py"), default_timeout=60)
    settle(at)
    boot = at.text_input(key=ui_runs.BOOT_KEY)
    assert boot.value == ui_runs.BOOT_ID
    assert not any("restarted" in w.value for w in at.warning)
    boot.set_value("0123456789ab")  # what a tab opened on the previous server sends back
    settle(at)
    (warning,) = [w for w in at.warning if "restarted" in w.value]
    assert (
        warning.proto.icon == ":material/refresh:"
    )  # an emoji was an empty box in Debian's Chromium
    if data_folder:  # the runs are kept: the notice says where
        assert "My runs" in shown(warning.value) and "are gone" not in shown(warning.value)
    else:
        assert "are gone" in shown(warning.value) and "Load a saved run" in shown(warning.value)
    settle(at)  # the notice stays until dismissed; the widget now holds this server's id
    assert any("restarted" in w.value for w in at.warning)
    assert at.text_input(key=ui_runs.BOOT_KEY).value == ui_runs.BOOT_ID
    at.button(key="landscape_restart_ok").click()
    settle(at)
    assert not any("restarted" in w.value for w in at.warning)


def test_reproduce_it_for_an_upload_run_offers_the_run_file():
    rows = [f"{a:.4f},{int(a > 0)}" for a in X]
    name = upload.register(upload.parse_csv(csv("x,label", rows)))
    r = train(Config(dataset=name, n_samples=60, epochs=2, width=4))
    at = page(LANDSCAPE, r)
    at.radio(key="lp_dim").set_value("1D line")
    settle(at)
    at.slider(key="lp_nx1").set_value(5)
    at.button(key="lp_go").click()
    settle(at)
    assert not at.error, errors(at)
    (code,) = at.code
    assert "\npython -m landscape line --load-run run.npz" in code.value
    assert any("uploaded CSV" in shown(c.value) for c in at.caption)
    assert any(b.label == "Run .npz (for --load-run)" for b in at.get("download_button"))
