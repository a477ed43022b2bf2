"""The ``csoftmax`` command, end to end in a subprocess (``python -m csoftmax``)."""

import csv
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import csoftmax
from csoftmax import _cli
from csoftmax.datasets import load_digits8x8, train_test_split

PACKAGE_ROOT = str(Path(csoftmax.__file__).resolve().parent.parent)


def run_cli(*args, cwd=None, extra_path=None, timeout=120):
    """Run ``python -m csoftmax ARGS`` against the package under test."""
    env = dict(os.environ)
    paths = ([str(extra_path)] if extra_path else []) + [PACKAGE_ROOT]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("CSOFTMAX_ISA", None)
    return subprocess.run(
        [sys.executable, "-m", "csoftmax", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def assert_user_error(result, *words):
    """Exit status 2, and stderr is exactly one line, without a traceback."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def default_run():
    return run_cli("train")


@pytest.fixture(scope="module")
def default_json():
    result = run_cli("train", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    result = run_cli("train", "--quiet", "--save", path)
    assert result.returncode == 0, result.stderr
    return path


@pytest.fixture
def digits_csv(tmp_path):
    """The built-in digits as a CSV file with a header and the label last."""
    X, y = load_digits8x8(return_X_y=True)
    path = tmp_path / "digits.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([f"p{i}" for i in range(64)] + ["digit"])
        for row, label in zip(X.astype(int), y):
            writer.writerow(list(row) + [label])
    return path


# ---------------------------------------------------------------------------
# csoftmax train
# ---------------------------------------------------------------------------


def test_train_default_run_prints_the_report(default_run):
    assert default_run.returncode == 0, default_run.stderr
    out = default_run.stdout
    for text in (
        "built-in 8x8 binary digits",
        "1347 train, 450 test",
        f"solver: newton-cg  C={_cli.DEFAULT_C}",
        "iterations  objective",
        "converged after",
        "accuracy: train",
        "log-likelihood per sample: train",
        "gradient check at the solution (650 entries",
        "-> PASSED",
        "confusion matrix (test set",
        "recall",
        "wall time:",
    ):
        assert text in out, text
    # Not a terminal: progress lines, no carriage returns.
    assert "\r" not in out
    assert default_run.stderr == ""


def test_train_json_summary(default_json):
    s = default_json
    assert s["n_samples"] == 1797 and s["n_features"] == 64 and s["n_classes"] == 10
    assert s["n_train"] == 1347 and s["n_test"] == 450
    assert s["classes"] == list(range(10))
    assert s["settings"]["solver"] == "newton-cg" and s["settings"]["C"] == _cli.DEFAULT_C
    assert s["converged"] is True and s["warnings"] == []
    assert 1 <= s["n_iter"] <= s["settings"]["max_iter"]
    assert len(s["loss_curve"]) == s["n_iter"]
    assert s["loss_curve"][-1] == pytest.approx(s["objective"], rel=1e-9)
    assert s["test_accuracy"] >= 0.91 and s["train_accuracy"] >= s["test_accuracy"]
    assert -1.0 < s["test_log_likelihood"] < s["train_log_likelihood"] < 0
    assert s["gradient_check"]["passed"] is True and s["gradient_check"]["n_checked"] == 650
    counts = np.array(s["confusion_matrix"])
    assert counts.shape == (10, 10) and counts.sum() == 450
    assert np.trace(counts) / 450 == pytest.approx(s["test_accuracy"])
    assert s["wall_time_s"] > 0 and s["model"] is None and s["plot"] is None


def test_train_matches_the_kernels_on_the_same_split(default_json, saved_model):
    """Accuracy and log-likelihood reported agree with a recomputation from the saved model."""
    with np.load(saved_model) as model:
        W, b = model["coef"], model["intercept"]
    X, y = load_digits8x8(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y)
    assert np.mean(csoftmax.predict(W, X_test, b) == y_test) == pytest.approx(default_json["test_accuracy"])
    ll = csoftmax.log_likelihood(W, X_test, y_test, b) / len(y_test)
    assert ll == pytest.approx(default_json["test_log_likelihood"], rel=1e-6)


def test_train_accuracy_matches_scikit_learn(default_json):
    linear_model = pytest.importorskip("sklearn.linear_model")
    X, y = load_digits8x8(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y)
    reference = linear_model.LogisticRegression(C=_cli.DEFAULT_C, max_iter=1000).fit(X_train, y_train)
    sk_accuracy = reference.score(X_test, y_test)
    assert default_json["test_accuracy"] >= 0.91
    assert abs(default_json["test_accuracy"] - sk_accuracy) <= 0.01


def test_train_quiet_prints_one_line():
    result = run_cli("train", "--quiet")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("train accuracy") and "test accuracy" in lines[0]


def test_train_json_and_quiet_exclude_each_other():
    result = run_cli("train", "--json", "--quiet")
    assert result.returncode == 2 and "not allowed with" in result.stderr


def test_train_options(tmp_path):
    result = run_cli(
        "train", "--json", "--C", "1", "--max-iter", "50", "--threads", "1", "--seed", "3", "--test-size", "0.5"
    )
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["settings"] == {
        "solver": "newton-cg",
        "C": 1.0,
        "tol": 1e-4,
        "fit_intercept": True,
        "max_iter": 50,
        "n_threads": 1,
        "seed": 3,
        "test_size": 0.5,
    }
    assert s["n_test"] == 899 and s["n_train"] == 898
    assert s["test_accuracy"] > 0.85


def test_train_max_iter_too_small_warns_but_completes():
    result = run_cli("train", "--json", "--max-iter", "1")
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["converged"] is False and s["n_iter"] == 1 and s["warnings"]
    assert "warning" in result.stderr


def test_train_without_test_set():
    result = run_cli("train", "--test-size", "0")
    assert result.returncode == 0, result.stderr
    assert "no test set" in result.stdout and "confusion matrix (training set" in result.stdout


def test_train_lbfgs():
    pytest.importorskip("scipy.optimize")
    result = run_cli("train", "--json", "--solver", "lbfgs")
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["settings"]["solver"] == "lbfgs" and s["test_accuracy"] >= 0.91


def test_train_sgd_options():
    result = run_cli("train", "--json", "--solver", "sgd", "--epochs", "5", "--batch-size", "64")
    if result.returncode == 2:  # an estimator without the stochastic solver
        assert_user_error(result, "sgd")
        return
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["settings"]["epochs"] == 5 and s["settings"]["batch_size"] == 64
    assert s["n_iter"] <= 5


def test_train_sgd_options_need_sgd():
    assert_user_error(run_cli("train", "--epochs", "5"), "--epochs", "sgd")
    assert_user_error(run_cli("train", "--batch-size", "8"), "--batch-size", "sgd")


def test_train_on_csv_and_npz_files(tmp_path, digits_csv):
    result = run_cli("train", "--json", "--data", digits_csv)
    assert result.returncode == 0, result.stderr
    from_csv = json.loads(result.stdout)
    X, y = load_digits8x8(return_X_y=True)
    np.savez(tmp_path / "digits.npz", X=X, y=y)
    result = run_cli("train", "--json", "--data", tmp_path / "digits.npz")
    assert result.returncode == 0, result.stderr
    from_npz = json.loads(result.stdout)
    assert from_csv["test_accuracy"] == from_npz["test_accuracy"]
    assert from_csv["data"].endswith("digits.csv") and from_csv["n_features"] == 64


def test_train_csv_label_by_name_and_string_labels(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    names = np.array(["setosa", "versicolor", "virginica"])[np.argmax(X, axis=1)]
    path = tmp_path / "flowers.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["species", "a", "b", "c"])
        for label, row in zip(names, X):
            writer.writerow([label, *row])
    result = run_cli("train", "--json", "--data", path, "--label", "species", "--C", "10")
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    assert s["classes"] == ["setosa", "versicolor", "virginica"] and s["n_features"] == 3
    assert s["test_accuracy"] > 0.8
    # Column numbers work too.
    result = run_cli("train", "--quiet", "--data", path, "--label", "0")
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------------------
# --save and predict
# ---------------------------------------------------------------------------


def test_saved_model_contents(saved_model):
    with np.load(saved_model, allow_pickle=False) as model:
        assert str(model["format"]) == _cli.MODEL_FORMAT
        assert model["coef"].shape == (10, 64) and model["intercept"].shape == (10,)
        np.testing.assert_array_equal(model["classes"], np.arange(10))
        settings = json.loads(str(model["settings"]))
    assert settings["solver"] == "newton-cg" and settings["C"] == _cli.DEFAULT_C
    assert settings["version"] == csoftmax.__version__


def test_predict_to_stdout(saved_model):
    result = run_cli("predict", "--model", saved_model)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["index", "true", "predicted"] + [f"p_{k}" for k in range(10)]
    assert len(rows) == 1 + 1797
    P = np.array([[float(v) for v in row[3:]] for row in rows[1:]])
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-5)
    predicted = np.array([int(row[2]) for row in rows[1:]])
    np.testing.assert_array_equal(predicted, np.argmax(P, axis=1))
    assert result.stderr.startswith("accuracy 0.9")


def test_predict_to_file_from_csv_without_labels(saved_model, tmp_path):
    X, _ = load_digits8x8(return_X_y=True)
    data = tmp_path / "unlabelled.csv"
    np.savetxt(data, X[:10], delimiter=",", fmt="%d")
    output = tmp_path / "out.csv"
    result = run_cli("predict", "--model", saved_model, "--data", data, "--output", output)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote 10 predictions to {output}"
    rows = list(csv.reader(output.read_text().splitlines()))
    assert rows[0][:2] == ["index", "predicted"] and len(rows) == 11
    with np.load(saved_model) as model:
        expected = csoftmax.predict(model["coef"], X[:10], model["intercept"])
    assert [int(row[1]) for row in rows[1:]] == expected.tolist()


def test_predict_npz_with_labels(saved_model, tmp_path):
    X, y = load_digits8x8(return_X_y=True)
    np.savez(tmp_path / "d.npz", X=X[:100], y=y[:100])
    result = run_cli("predict", "--model", saved_model, "--data", tmp_path / "d.npz", "--output", tmp_path / "o.csv")
    assert result.returncode == 0, result.stderr
    assert "accuracy" in result.stdout


# ---------------------------------------------------------------------------
# --plot
# ---------------------------------------------------------------------------


def png_size(path):
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    figure = tmp_path / "figure.png"
    result = run_cli("train", "--quiet", "--plot", figure)
    assert result.returncode == 0, result.stderr
    width, height = png_size(figure)
    assert (width, height) == (
        int(_cli.FIGURE_WIDTH_IN * _cli.FIGURE_DPI),
        int(_cli.FIGURE_HEIGHT_IN * _cli.FIGURE_DPI),
    )


def test_plot_without_square_features(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 5))
    np.savez(tmp_path / "d.npz", X=X, y=np.argmax(X[:, :3], axis=1))
    figure = tmp_path / "figure.png"
    result = run_cli("train", "--quiet", "--data", tmp_path / "d.npz", "--plot", figure)
    assert result.returncode == 0, result.stderr
    assert png_size(figure) == (1000, 400)


def test_plot_without_matplotlib(tmp_path):
    blocker = tmp_path / "blocker" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('matplotlib is blocked in this test')\n")
    figure = tmp_path / "figure.png"
    result = run_cli("train", "--quiet", "--plot", figure, extra_path=blocker.parent)
    assert result.returncode == 0, result.stderr
    assert 'pip install "csoftmax[plot]"' in result.stderr and "Traceback" not in result.stderr
    assert not figure.exists()
    assert result.stdout.startswith("train accuracy")


# ---------------------------------------------------------------------------
# gradcheck, info, selfcheck, bench, no command, --help
# ---------------------------------------------------------------------------


def test_gradcheck_on_builtin_data():
    result = run_cli("gradcheck")
    assert result.returncode == 0, result.stderr
    assert "650 entries" in result.stdout and "PASSED" in result.stdout


def test_gradcheck_on_a_file(tmp_path):
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "d.npz", X=rng.normal(size=(50, 3)), y=rng.integers(0, 4, 50))
    result = run_cli("gradcheck", "--data", tmp_path / "d.npz", "--seed", "5")
    assert result.returncode == 0, result.stderr
    assert "16 entries" in result.stdout and "PASSED" in result.stdout


def test_info():
    result = run_cli("info")
    assert result.returncode == 0
    assert f"csoftmax {csoftmax.__version__}" in result.stdout and "OpenMP" in result.stdout


def test_selfcheck():
    result = run_cli("selfcheck")
    assert result.returncode == 0, result.stderr
    assert "PASSED" in result.stdout and "OpenMP" in result.stdout


def test_no_command_prints_help_and_exits_2():
    result = run_cli()
    assert result.returncode == 2
    assert "train" in result.stderr and "csoftmax train" in result.stderr and result.stdout == ""


@pytest.mark.parametrize("command", ["", "train", "predict", "gradcheck", "info", "bench", "selfcheck"])
def test_help(command):
    result = run_cli(*([command] if command else []), "--help")
    assert result.returncode == 0 and result.stdout.startswith("usage: csoftmax")


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and csoftmax.__version__ in result.stdout


def test_bench_outside_a_source_checkout(monkeypatch, capsys):
    monkeypatch.setattr(_cli, "find_benchmark_script", lambda: None)
    assert _cli.main(["bench", "--quick"]) == 2
    assert "source repository" in capsys.readouterr().err


def fake_checkout(root):
    (root / "benchmarks").mkdir(parents=True)
    (root / "setup.py").write_text("")
    (root / "pyproject.toml").write_text('[project]\nname = "csoftmax"\n')
    script = root / "benchmarks" / "run.py"
    script.write_text("import sys\nprint('bench args', sys.argv[1:])\nsys.exit(3)\n")
    return script


def test_find_benchmark_script(tmp_path):
    checkout = tmp_path / "checkout"
    script = fake_checkout(checkout)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _cli.find_benchmark_script(checkout / "csoftmax", elsewhere) == script
    # An installed package, run from the checkout.
    assert _cli.find_benchmark_script(tmp_path / "site-packages" / "csoftmax", checkout) == script
    assert _cli.find_benchmark_script(tmp_path / "site-packages" / "csoftmax", elsewhere) is None
    # A benchmarks/run.py of some other project does not count.
    (checkout / "pyproject.toml").write_text('[project]\nname = "other"\n')
    assert _cli.find_benchmark_script(checkout / "csoftmax", elsewhere) is None


def test_bench_runs_the_script_with_quick(tmp_path, monkeypatch, capfd):
    script = fake_checkout(tmp_path)
    monkeypatch.setattr(_cli, "find_benchmark_script", lambda: script)
    assert _cli.main(["bench", "--quick", "--repeat", "2"]) == 3
    assert "bench args ['--quick', '--repeat', '2']" in capfd.readouterr().out


# ---------------------------------------------------------------------------
# Errors a user can make: one line on stderr, exit status 2
# ---------------------------------------------------------------------------


def test_error_missing_file(tmp_path):
    assert_user_error(run_cli("train", "--data", tmp_path / "nope.csv"), "no such file")
    assert_user_error(run_cli("train", "--data", tmp_path), "directory")
    assert_user_error(run_cli("predict", "--model", tmp_path / "nope.npz"), "no such file")


def test_error_unknown_format(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_text("x")
    assert_user_error(run_cli("train", "--data", path), "unknown data format")


def test_error_npz_contents(tmp_path):
    np.savez(tmp_path / "a.npz", features=np.zeros((3, 2)))
    assert_user_error(run_cli("train", "--data", tmp_path / "a.npz"), "no array named X", "features")
    np.savez(tmp_path / "b.npz", X=np.zeros((3, 2)))
    assert_user_error(run_cli("train", "--data", tmp_path / "b.npz"), "no labels")
    np.savez(tmp_path / "c.npz", X=np.zeros(3), y=np.zeros(3))
    assert_user_error(run_cli("train", "--data", tmp_path / "c.npz"), "2-D")
    np.savez(tmp_path / "d.npz", X=np.zeros((3, 2)), y=np.zeros(4))
    assert_user_error(run_cli("train", "--data", tmp_path / "d.npz"), "3 samples", "4 labels")
    np.savez(tmp_path / "e.npz", X=np.full((3, 2), np.nan), y=np.zeros(3))
    assert_user_error(run_cli("train", "--data", tmp_path / "e.npz"), "NaN")
    np.savez(tmp_path / "f.npz", X=np.zeros((4, 2)), y=np.zeros(4))
    assert_user_error(run_cli("train", "--data", tmp_path / "f.npz", "--test-size", "0"), "class")
    (tmp_path / "g.npz").write_text("not a zip file")
    assert_user_error(run_cli("train", "--data", tmp_path / "g.npz"), "not a readable .npz")


def test_error_csv_cells(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,0\n3,x,1\n")
    assert_user_error(run_cli("train", "--data", path), "line 3", "column 2", "'x' is not a number")
    path.write_text("1,2,0\n3,4\n")
    assert_user_error(run_cli("train", "--data", path), "line 2", "2 cells")
    path.write_text("")
    assert_user_error(run_cli("train", "--data", path), "no data rows")
    path.write_text("a,b,label\n1,2,0\n3,4,\n")
    assert_user_error(run_cli("train", "--data", path), "empty label")
    path.write_bytes(b"\xff\xfe\x00\x01,\x80\n")
    assert_user_error(run_cli("train", "--data", path), "UTF-8")


def test_error_csv_label_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2,0\n3,4,1\n")
    result = run_cli("train", "--data", path, "--label", "species")
    assert_user_error(result, "no column named 'species'", "a, b, label")
    assert_user_error(run_cli("train", "--data", path, "--label", "7"), "out of range")
    path.write_text("1,2,0\n3,4,1\n")
    assert_user_error(run_cli("train", "--data", path, "--label", "species"), "no header")


def test_error_predict_inputs(saved_model, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "wide.npz", X=rng.random((5, 10)))
    assert_user_error(
        run_cli("predict", "--model", saved_model, "--data", tmp_path / "wide.npz"), "10 features", "trained on 64"
    )
    X, _ = load_digits8x8(return_X_y=True)
    np.savez(tmp_path / "unseen.npz", X=X[:5], y=np.array([0, 1, 2, 42, 99]))
    assert_user_error(
        run_cli("predict", "--model", saved_model, "--data", tmp_path / "unseen.npz"), "not trained on", "42, 99"
    )
    np.savez(tmp_path / "strings.npz", X=X[:2], y=np.array(["a", "b"]))
    assert_user_error(run_cli("predict", "--model", saved_model, "--data", tmp_path / "strings.npz"), "not trained on")
    data = tmp_path / "few.csv"
    np.savetxt(data, X[:3, :10], delimiter=",")
    assert_user_error(run_cli("predict", "--model", saved_model, "--data", data), "10 columns", "64 feature columns")


def test_error_not_a_model(tmp_path):
    np.savez(tmp_path / "m.npz", X=np.zeros((2, 2)))
    assert_user_error(run_cli("predict", "--model", tmp_path / "m.npz"), "not a csoftmax model")
    (tmp_path / "t.npz").write_text("hello")
    assert_user_error(run_cli("predict", "--model", tmp_path / "t.npz"), "not a csoftmax model")


def test_error_unwritable_outputs(tmp_path, saved_model):
    missing_dir = tmp_path / "no" / "such" / "dir"
    assert_user_error(run_cli("train", "--quiet", "--save", missing_dir / "m.npz"), "--save", "cannot write")
    assert_user_error(
        run_cli("predict", "--model", saved_model, "--output", missing_dir / "p.csv"), "--output", "cannot write"
    )


def test_error_plot_unwritable(tmp_path):
    pytest.importorskip("matplotlib")
    result = run_cli("train", "--quiet", "--plot", tmp_path / "no" / "dir" / "f.png")
    assert_user_error(result, "--plot", "cannot write")


@pytest.mark.parametrize(
    "args, word",
    [
        (["train", "--C", "-1"], "--C"),
        (["train", "--C", "abc"], "--C"),
        (["train", "--solver", "magic"], "--solver"),
        (["train", "--max-iter", "0"], "--max-iter"),
        (["train", "--threads", "0"], "--threads"),
        (["train", "--test-size", "1.5"], "--test-size"),
        (["train", "--bogus"], "unrecognized arguments"),
        (["predict"], "--model"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_error_bad_options(args, word):
    result = run_cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # argparse: the usage, then one error line.
    assert word in result.stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------------------
# Pieces, in process
# ---------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_redraws_in_place():
    stream = FakeTerminal()
    bar = _cli.ProgressBar(10, "iterations", stream)
    for step in range(1, 6):
        bar.update(step, 1.0 / step)
    bar.close()
    text = stream.getvalue()
    assert text.count("\r") == 6 and text.endswith("\n") and text.count("\n") == 1
    assert "5/10 iterations" in text


def test_progress_bar_elsewhere_prints_a_few_lines():
    stream = io.StringIO()
    bar = _cli.ProgressBar(100, "iterations", stream)
    for step in range(1, 21):
        bar.update(step, 1.0 / step)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert [int(line.split("]")[1].split("/")[0]) for line in lines] == [1, 2, 4, 8, 16, 20]
    assert "\r" not in stream.getvalue()


def test_verbose_reader_parses_the_estimator_lines():
    seen, other = [], io.StringIO()
    reader = _cli._VerboseReader(lambda step, value: seen.append((step, value)), other)
    reader.write("[SoftmaxRegression newton-cg] iteration    3: objective 0.25, max |gradient| 1e-3, step 1\n")
    reader.write("[SoftmaxRegression lbfgs] iteration   12: objective 1.5e-02\nsomething ")
    reader.write("else\n")
    assert seen == [(3, 0.25), (12, 0.015)]
    assert other.getvalue() == "something else\n"


def test_confusion_matrix_and_its_table():
    counts = _cli.confusion_matrix(["a", "b", "b", "c"], ["a", "b", "c", "c"], np.array(["a", "b", "c"]))
    np.testing.assert_array_equal(counts, [[1, 0, 0], [0, 1, 1], [0, 0, 1]])
    lines = _cli.format_confusion_matrix(counts, ["a", "b", "c"])
    assert lines[0].split() == ["true\\pred", "a", "b", "c", "recall"]
    assert lines[2].split() == ["b", "0", "1", "1", "0.500"]


def test_five_point_check_at_data():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, 40)
    result = _cli.five_point_gradient_check(rng.normal(size=(3, 3)), X, y, rng.normal(size=3), l2=0.1)
    assert result["passed"] and result["n_checked"] == 12 and result["max_rel_error"] < 1e-6


def test_finite_difference_check_is_still_importable_from_main():
    from csoftmax.__main__ import finite_difference_check

    abs_err, rel_err = finite_difference_check(n_samples=30, n_features=3, n_classes=3)
    assert rel_err < 1e-6
