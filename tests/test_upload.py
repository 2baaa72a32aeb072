"""CSV upload: every malformed file gets its own clear message; a good file round-trips to the
numbers an independent computation gives; caps hold; the registry is bounded and thread-safe;
the Streamlit widget shows errors without raising or losing the rest of the session."""

from __future__ import annotations

import io
import threading

import numpy as np
import pandas as pd
import pytest
import torch
from markdown_text import shown

from landscape.data import upload


def csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, float_format="%.17g").encode()


def frame(n=60, seed=0, labels=("cat", "dog")) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, -2.0]
    y = np.array(labels)[np.arange(n) % len(labels)]
    return pd.DataFrame({"f1": X[:, 0], "f2": X[:, 1], "f3": X[:, 2], "label": y})


GOOD = csv_bytes(frame())


@pytest.fixture(autouse=True)
def fresh_registry():
    upload.clear()
    yield
    upload.clear()


# ----------------------------------------------------------------------------- malformed files


def reject(raw, **kw) -> str:
    with pytest.raises(ValueError) as e:
        upload.parse_csv(raw, **kw)
    return str(e.value)


def test_empty_file():
    for raw in (b"", b"   \n\n  \n"):
        assert "empty" in reject(raw)


def test_header_only_is_too_few_rows():
    msg = reject(b"a,b,label\n")
    assert "0 data rows" in msg and str(upload.MIN_ROWS) in msg


@pytest.mark.parametrize("sep,word", [(";", "semicolon"), ("\t", "tab"), ("|", "pipe")])
def test_wrong_delimiter_is_named(sep, word):
    raw = frame().to_csv(index=False, sep=sep).encode()
    msg = reject(raw)
    assert word in msg and "delimiter" in msg and "comma" in msg


def test_single_column():
    msg = reject(b"value\n" + b"1.5\n" * 20)
    assert "single column" in msg and "'value'" in msg


def test_text_in_a_feature_column_names_column_and_row():
    df = frame().astype({"f2": object})
    df.loc[6, "f2"] = "twelve"
    msg = reject(csv_bytes(df))
    assert "'f2'" in msg and "'twelve'" in msg and "data row 7" in msg and "line 8" in msg


def test_text_row_counts_blank_lines_in_the_file_line():
    raw = b"a,b,y\n\n" + b"1,2,0\n2,3,1\n" * 6 + b"\n1,oops,0\n"
    msg = reject(raw)
    assert "'oops'" in msg and "data row 13" in msg and "line 16 of the file" in msg


def test_infinite_feature_value_is_rejected():
    df = frame().astype({"f1": object})
    df.loc[2, "f1"] = "inf"
    msg = reject(csv_bytes(df))
    assert "'f1'" in msg and "'inf'" in msg and "finite" in msg


def test_missing_values_name_column_and_count():
    df = frame()
    df.loc[[3, 9, 11], "f3"] = np.nan
    df.loc[[4], "label"] = None
    msg = reject(csv_bytes(df))
    assert "column 'f3' has 3 missing values" in msg
    assert "column 'label' has 1 missing value" in msg


def test_short_or_long_rows_name_the_line():
    rows = GOOD.decode().splitlines()
    short = "\n".join(rows[:5] + ["1.0,2.0,cat"] + rows[5:]).encode()
    long = "\n".join(rows[:3] + [rows[3] + ",7"] + rows[4:]).encode()
    assert "line 6 has 3 fields but the header has 4" in reject(short)
    assert "line 4 has 5 fields but the header has 4" in reject(long)


def test_one_class_only():
    msg = reject(csv_bytes(frame(labels=("spam",))))
    assert "only one class" in msg and "'spam'" in msg


def test_one_class_only_even_when_forced():
    df = frame().assign(label=1)
    assert "only one class" in reject(csv_bytes(df), task="classification")


def test_constant_regression_target():
    df = frame().assign(label=3.25)
    assert "same value" in reject(csv_bytes(df), task="regression")


def test_a_class_with_a_single_row():
    df = frame()
    df.loc[0, "label"] = "bird"
    msg = reject(csv_bytes(df))
    assert "'bird'" in msg and "only 1 row" in msg


def test_target_column_missing_lists_columns():
    msg = reject(GOOD, target="species")
    assert "'species'" in msg and "['f1', 'f2', 'f3', 'label']" in msg


def test_unknown_task():
    msg = reject(GOOD, task="clustering")
    assert "task='clustering'" in msg and "regression" in msg


def test_text_target_forced_to_regression_names_the_cell():
    msg = reject(GOOD, task="regression")
    assert "regression target column 'label'" in msg and "'cat'" in msg


def test_no_header_row():
    raw = b"\n".join(b"%d,%d,%d" % (i, i + 1, i % 2) for i in range(30))
    assert "header" in reject(raw)


def test_duplicate_column_names():
    raw = b"a,b,a,y\n" + b"1,2,3,0\n3,4,5,1\n" * 10
    assert "unique" in reject(raw) and "'a'" in reject(raw)


def test_binary_and_excel_files():
    assert "not a text CSV" in reject(b"PK\x03\x04" + bytes(range(256)) * 4)
    assert "not a text CSV" in reject(b"a,b\n\x00\x01\x02" * 20)


def test_not_bytes():
    assert "bytes" in reject("a,b\n1,2\n")


# ----------------------------------------------------------------------------- caps


def test_byte_cap_says_the_cap():
    msg = reject(GOOD, max_bytes=1000)
    assert f"{len(GOOD)} bytes" in msg and "cap is 1000 bytes" in msg


def test_default_byte_cap():
    big = b"a,b,y\n" + b"1.000000000000,2.000000000000,0\n" * (upload.MAX_BYTES // 30)
    assert len(big) > upload.MAX_BYTES
    assert "the cap is 5.0 MiB" in reject(big)


def test_row_cap_says_the_cap():
    assert "cap is 50 rows" in reject(GOOD, max_rows=50)
    assert upload.parse_csv(GOOD, max_rows=60).n_train == 48  # exactly at the cap is fine


def test_default_row_cap():
    df = pd.DataFrame(
        {"x": np.arange(upload.MAX_ROWS + 1) % 7, "y": np.arange(upload.MAX_ROWS + 1) % 2}
    )
    assert f"cap is {upload.MAX_ROWS} rows" in reject(df.to_csv(index=False).encode())


def test_column_cap_says_the_cap():
    assert "4 columns: the cap is 3 columns" in reject(GOOD, max_cols=3)
    wide = pd.DataFrame(
        np.ones((20, upload.MAX_COLS + 1)), columns=[f"c{i}" for i in range(upload.MAX_COLS + 1)]
    )
    assert f"cap is {upload.MAX_COLS} columns" in reject(wide.to_csv(index=False).encode())


def test_class_cap():
    n = 2 * (upload.MAX_CLASSES + 1)
    df = pd.DataFrame({"x": np.arange(n, dtype=float), "y": [f"c{i // 2}" for i in range(n)]})
    msg = reject(df.to_csv(index=False).encode())
    assert f"{upload.MAX_CLASSES + 1} distinct values" in msg and "regression" in msg


# ----------------------------------------------------------------------------- good files


def standardise(train, test):
    mu, sd = train.mean(0), train.std(0)
    return (train - mu) / sd, (test - mu) / sd


def test_classification_round_trip_matches_independent_split():
    from sklearn.model_selection import train_test_split

    df = frame(n=80, seed=3, labels=("setosa", "versicolor", "virginica"))
    ds = upload.parse_csv(csv_bytes(df), target="label", seed=5, test_fraction=0.25)
    assert ds.task == "classification" and ds.n_classes == 3
    assert ds.feature_names == ("f1", "f2", "f3") and ds.input_shape == (3,)
    assert ds.X_train.dtype == torch.float32 and ds.y_train.dtype == torch.long
    # independent: same split call, classes in sorted order, stats of the train split only
    X = df[["f1", "f2", "f3"]].to_numpy()
    y = df["label"].map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=5)
    Xtr, Xte = standardise(Xtr, Xte)
    np.testing.assert_allclose(ds.X_train.numpy(), Xtr, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ds.X_test.numpy(), Xte, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds.y_train.numpy(), ytr)
    np.testing.assert_array_equal(ds.y_test.numpy(), yte)
    assert "setosa, versicolor, virginica" in ds.description


def test_regression_round_trip_and_target_standardised():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 2))
    price = 1e5 + 3e4 * x[:, 0] - 1e4 * x[:, 1] + rng.normal(size=50) * 1e3
    df = pd.DataFrame({"rooms": x[:, 0], "age": x[:, 1], "price": price})
    ds = upload.parse_csv(csv_bytes(df))
    assert ds.task == "regression" and ds.n_classes == 0 and ds.y_train.dtype == torch.float32
    # un-standardise: the union of both splits is exactly the file's rows
    ytr = ds.y_train.double().numpy()
    assert abs(ytr.mean()) < 1e-6 and abs(ytr.std() - 1) < 1e-6
    all_y = np.concatenate([ytr, ds.y_test.double().numpy()])
    mu, sd = _train_stats(price, len(ytr), all_y)
    np.testing.assert_allclose(np.sort(all_y * sd + mu), np.sort(price), rtol=1e-6)


def _train_stats(y, n_train, all_std):
    """mean/sd of the train split recovered from two standardised values and the raw data."""
    order_raw, order_std = np.argsort(y), np.argsort(all_std)
    a, b = order_raw[0], order_raw[-1]
    sa, sb = all_std[order_std[0]], all_std[order_std[-1]]
    sd = (y[b] - y[a]) / (sb - sa)
    return y[a] - sa * sd, sd


def test_auto_task_rules():
    base = frame(n=150).drop(columns="label")
    ints = base.assign(y=np.arange(150) % 4)  # few integer values -> classes
    many = base.assign(y=np.arange(150) % 30)  # many integer values -> regression
    real = base.assign(y=np.linspace(0, 1, 150))
    assert upload.parse_csv(csv_bytes(ints)).task == "classification"
    assert upload.parse_csv(csv_bytes(many)).task == "regression"
    assert upload.parse_csv(csv_bytes(real)).task == "regression"
    assert upload.parse_csv(csv_bytes(many), task="classification").n_classes == 30
    assert upload.parse_csv(csv_bytes(ints), task="regression").task == "regression"


def test_numeric_labels_sorted_numerically():
    df = frame(n=40).drop(columns="label").assign(y=[2, 10] * 20)
    ds = upload.parse_csv(csv_bytes(df))
    # class 0 is label 2, class 1 is label 10 (not "10" < "2" as text)
    y_all = np.concatenate([ds.y_train.numpy(), ds.y_test.numpy()])
    assert sorted(set(y_all.tolist())) == [0, 1] and "(2, 10)" in ds.description


def test_target_in_the_middle_and_quoted_fields():
    raw = b'"name, with comma",y,b\n' + b"".join(
        b"%d,%d,%d\n" % (i, i % 2, i * i) for i in range(30)
    )
    ds = upload.parse_csv(raw, target="y")
    assert ds.feature_names == ("name, with comma", "b") and ds.n_classes == 2


def test_utf8_bom_latin1_and_spaces():
    body = b"".join(b"%d, %d ,%d\n" % (i, i * 2, i % 2) for i in range(30))
    a = upload.parse_csv("\ufeffx,caf\u00e9,y\n".encode() + body)
    b = upload.parse_csv("x,caf\u00e9,y\n".encode("latin-1") + body)
    assert a.feature_names == b.feature_names == ("x", "caf\u00e9")
    assert a.name == b.name


def test_deterministic_names_and_seeds():
    a, b = upload.parse_csv(GOOD), upload.parse_csv(GOOD)
    assert a.name == b.name and a.name.startswith("upload:") and len(a.name) == len("upload:") + 12
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    c = upload.parse_csv(GOOD, seed=1)
    assert c.name != a.name and not torch.equal(c.X_train, a.X_train)
    num = csv_bytes(frame().assign(label=np.arange(60) % 2))
    d, e = upload.parse_csv(num), upload.parse_csv(num, target="f3")  # another target: another set
    assert d.name != e.name and d.task == "classification" and e.task == "regression"


def test_read_table_then_to_dataset_equals_parse_csv():
    table = upload.read_table(GOOD)
    assert list(table.columns) == ["f1", "f2", "f3", "label"]
    assert upload.to_dataset(table).name == upload.parse_csv(GOOD).name


def test_uploaded_set_is_learnable():
    """A logistic regression on the standardised features separates a linearly separable file."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    df = pd.DataFrame(
        {"a": X[:, 0], "b": X[:, 1], "y": np.where(X[:, 0] + 2 * X[:, 1] > 0, "yes", "no")}
    )
    ds = upload.parse_csv(csv_bytes(df))
    torch.manual_seed(0)
    lin = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(lin.parameters(), lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(lin(ds.X_train), ds.y_train).backward()
        opt.step()
    acc = (lin(ds.X_test).argmax(1) == ds.y_test).float().mean().item()
    assert acc >= 0.95


# ----------------------------------------------------------------------------- registry


def make_sets(k, n=20):
    out = []
    for i in range(k):
        x = np.random.default_rng(i).normal(size=n)  # distinct even after standardising
        df = pd.DataFrame({"x": x, "y": np.arange(n) % 2})
        out.append(upload.parse_csv(df.to_csv(index=False).encode()))
    return out


def test_register_and_lookup():
    ds = upload.parse_csv(GOOD)
    name = upload.register(ds)
    assert name == ds.name
    assert upload.lookup(name) is ds
    assert upload.register(ds) == name and upload.registered() == [name]  # idempotent
    info = upload.info(name)
    assert info.task == "classification" and info.n_classes == 2 and info.kind == "tabular"


def test_register_renames_a_dataset_with_another_name():
    ds = upload.parse_csv(GOOD)
    other = upload._renamed(ds, "whatever")
    assert upload.register(other) == ds.name and upload.lookup(ds.name).name == ds.name


def test_lookup_errors():
    with pytest.raises(ValueError, match="no longer on the server; upload it again"):
        upload.lookup("upload:0123456789ab")
    with pytest.raises(ValueError, match="not an uploaded set"):
        upload.lookup("moons")


def test_registry_is_a_bounded_lru():
    sets = make_sets(upload.REGISTRY_SIZE + 5)
    names = [upload.register(d) for d in sets[: upload.REGISTRY_SIZE]]
    upload.lookup(names[0])  # touch the oldest: it becomes the most recent
    for d in sets[upload.REGISTRY_SIZE :]:
        upload.register(d)
    kept = upload.registered()
    assert len(kept) == upload.REGISTRY_SIZE
    assert names[0] in kept
    for evicted in names[1:6]:
        assert evicted not in kept
        with pytest.raises(ValueError, match="upload it again"):
            upload.lookup(evicted)


def test_registry_is_thread_safe():
    sets = make_sets(3 * upload.REGISTRY_SIZE)
    errors = []
    barrier = threading.Barrier(8)

    def worker(k):
        barrier.wait()
        try:
            for i in range(200):
                d = sets[(k * 7 + i) % len(sets)]
                name = upload.register(d)
                try:
                    assert upload.lookup(name).name == name
                except ValueError as e:  # evicted by another thread in between: allowed
                    assert "upload it again" in str(e)
        except Exception as e:  # pragma: no cover - the failure we look for
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    kept = upload.registered()
    assert len(kept) == upload.REGISTRY_SIZE == len(set(kept))


# ----------------------------------------------------------------------------- the widget


@pytest.fixture
def app():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file("apps/upload_app.py", default_timeout=30)
    at.run()
    assert not at.exception
    return at


def result(at) -> str:
    return [m.value for m in at.markdown if m.value.startswith("result:")][0]


def test_widget_without_a_file(app):
    assert result(app) == "result: None" and not app.error


def test_widget_good_file_registers_and_summarises(app):
    app.file_uploader[0].set_value(("pets.csv", GOOD, "text/csv")).run()
    assert not app.exception and not app.error
    name = upload.parse_csv(GOOD).name
    assert result(app) == f"result: {name}" and upload.registered() == [name]
    assert "60 rows (48 train / 12 test), 3 features, classification, 2 classes" in shown(
        app.caption[0].value
    )
    assert (
        app.selectbox[0].options == ["f1", "f2", "f3", "label"]
        and app.selectbox[0].value == "label"
    )
    # another target and task: another dataset, made from the same upload
    # another target: the text column 'label' becomes a feature, which is refused clearly
    app.selectbox[0].set_value("f2").run()
    assert not app.exception and result(app) == "result: None"
    assert "feature column 'label' has 'cat'" in shown(app.error[0].value)
    # and a numeric file with another target and task gives another dataset
    num = csv_bytes(frame().assign(label=np.arange(60) % 2))
    app.file_uploader[0].set_value(("num.csv", num, "text/csv")).run()
    app.selectbox[0].set_value("f2").run()
    assert result(app) == f"result: {upload.parse_csv(num, target='f2').name}"
    assert "regression" in shown(app.caption[0].value)


def test_widget_rejects_bad_file_and_keeps_the_session(app):
    app.slider(key="other").set_value(9).run()
    app.file_uploader[0].set_value(("pets.csv", GOOD, "text/csv")).run()
    good_name = result(app)
    bad = frame().to_csv(index=False, sep=";").encode()
    app.file_uploader[0].set_value(("pets.csv", bad, "text/csv")).run()
    assert not app.exception
    assert result(app) == "result: None"
    assert "Upload rejected" in shown(app.error[0].value) and "semicolon" in shown(
        app.error[0].value
    )
    assert app.slider(key="other").value == 9
    # the good file again: works, same name
    app.file_uploader[0].set_value(("pets.csv", GOOD, "text/csv")).run()
    assert result(app) == good_name and not app.error


@pytest.mark.parametrize(
    "raw,words",
    [
        (b"", "empty"),
        (csv_bytes(frame(labels=("one",))), "only one class"),
        (b"PK\x03\x04\x00\x00", "not a text CSV"),
    ],
)
def test_widget_error_messages(app, raw, words):
    app.file_uploader[0].set_value(("x.csv", raw, "text/csv")).run()
    assert not app.exception and result(app) == "result: None"
    assert words in shown(app.error[0].value)


def test_widget_task_error_then_recovery(app):
    app.file_uploader[0].set_value(("pets.csv", GOOD, "text/csv")).run()
    app.radio[0].set_value("regression").run()
    assert (
        not app.exception and "'cat'" in shown(app.error[0].value) and result(app) == "result: None"
    )
    app.radio[0].set_value("auto").run()
    assert not app.error and result(app).startswith("result: upload:")


def test_widget_size_cap_before_parsing(app, monkeypatch):
    monkeypatch.setattr(upload, "MAX_BYTES", 100)
    app.file_uploader[0].set_value(("pets.csv", GOOD, "text/csv")).run()
    assert not app.exception and "cap is 100 bytes" in shown(app.error[0].value)


def test_widget_reregisters_after_eviction(app):
    app.file_uploader[0].set_value(("pets.csv", GOOD, "text/csv")).run()
    name = result(app)
    upload.clear()  # the server forgot it (LRU eviction)
    app.run()
    assert result(app) == name and upload.registered() == [name[len("result: ") :]]


def test_widget_new_file_new_columns(app):
    app.file_uploader[0].set_value(("pets.csv", GOOD, "text/csv")).run()
    other = pd.DataFrame({"u": np.arange(30.0), "v": np.arange(30) % 3})
    app.file_uploader[0].set_value(("o.csv", other.to_csv(index=False).encode(), "text/csv")).run()
    assert not app.exception and app.selectbox[0].options == ["u", "v"]
    assert "3 classes" in shown(app.caption[0].value)


def test_csv_bytes_helper_is_lossless():
    df = frame()
    back = pd.read_csv(io.BytesIO(csv_bytes(df)))
    np.testing.assert_array_equal(
        back[["f1", "f2", "f3"]].to_numpy(), df[["f1", "f2", "f3"]].to_numpy()
    )
