"""The ``csoftmax`` command (also ``python -m csoftmax``).

Commands::

    csoftmax train      fit SoftmaxRegression (default: the built-in 8x8 binary digits)
    csoftmax predict    predictions and probabilities of a saved model
    csoftmax gradcheck  finite-difference check of the gradient on a data set
    csoftmax info       build and runtime configuration
    csoftmax bench      the benchmark suite of the source checkout
    csoftmax selfcheck  configuration + gradient check on a small random problem

Mistakes a user can make (missing or malformed files, wrong columns, labels
unknown to a model, bad option values) end with a one-line message on stderr
and exit status 2, never a traceback.  ``--help`` works on every command.
"""

import argparse
import contextlib
import csv
import io
import json
import math
import os
import re
import subprocess
import sys
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._config import config, show_config
from ._functions import log_likelihood, loss_and_gradient, predict_proba
from ._threads import resolve_n_threads
from ._version import __version__

__all__ = ["main", "build_parser", "finite_difference_check", "five_point_gradient_check"]

#: Inverse regularisation strength of ``csoftmax train``.  On the built-in
#: binary digits (stratified 75/25 split, seed 0) C=0.3 gives the best test
#: accuracy of C in {0.01, 0.03, 0.1, 0.3, 1, 3, 10} (0.924, as scikit-learn's
#: LogisticRegression with the same C); larger C fits the training set more
#: closely without gaining on the test set.
DEFAULT_C = 0.3
#: Truncated Newton needs NumPy only (L-BFGS needs SciPy) and converges in
#: about ten iterations on the built-in data.
DEFAULT_SOLVER = "newton-cg"
SOLVERS = ("newton-cg", "lbfgs", "sgd")
DEFAULT_TEST_SIZE = 0.25
DEFAULT_EPOCHS = 20
MODEL_FORMAT = "csoftmax-model-1"
EXIT_USAGE = 2

BUILTIN_NAME = "built-in 8x8 binary digits (UCI optdigits test set, CC BY 4.0)"


class UserError(Exception):
    """A mistake in the command line or the input data: one line on stderr, exit status 2."""


# ---------------------------------------------------------------------------
# Finite-difference checks of the gradient
# ---------------------------------------------------------------------------


def five_point_gradient_check(W, X, y, b=None, *, sample_weight=None, l2=0.0, h=1e-4, rtol=1e-6, atol=1e-8):
    """Compare the gradient of ``loss_and_gradient`` with five-point differences.

    Every entry of W (and b) is perturbed by ``-2h, -h, h, 2h`` and the
    derivative estimated as ``(f(-2h) - 8 f(-h) + 8 f(h) - f(2h)) / (12 h)``
    (truncation error O(h^4)).  An entry passes when
    ``|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)``.

    Returns a dict with ``max_abs_error``, ``max_rel_error`` (relative to
    ``max(|analytic|, |numeric|, atol)``), ``n_checked`` and ``passed``.
    """
    W = np.array(W, dtype=np.float64, copy=True)
    b = None if b is None else np.array(b, dtype=np.float64, copy=True)

    def loss(W_, b_):
        return loss_and_gradient(W_, X, y, b_, sample_weight=sample_weight, l2=l2)[0]

    _, grad_W, grad_b = loss_and_gradient(W, X, y, b, sample_weight=sample_weight, l2=l2)
    params = np.concatenate([W.ravel(), [] if b is None else b])
    analytic = np.concatenate([grad_W.ravel(), [] if b is None else grad_b])
    numeric = np.empty_like(params)
    for j in range(params.size):
        values = []
        for step in (-2, -1, 1, 2):
            p = params.copy()
            p[j] += step * h
            values.append(loss(p[: W.size].reshape(W.shape), None if b is None else p[W.size :]))
        f_m2, f_m1, f_p1, f_p2 = values
        numeric[j] = (f_m2 - 8 * f_m1 + 8 * f_p1 - f_p2) / (12 * h)
    abs_err = np.abs(analytic - numeric)
    scale = np.maximum(np.abs(analytic), np.abs(numeric))
    return {
        "max_abs_error": float(abs_err.max()),
        "max_rel_error": float((abs_err / np.maximum(scale, atol)).max()),
        "n_checked": int(params.size),
        "passed": bool(np.all(abs_err <= atol + rtol * scale)),
    }


def finite_difference_check(n_samples=200, n_features=8, n_classes=4, seed=0, h=1e-4):
    """Largest errors between the analytic and a five-point gradient on a random problem.

    The problem has sample weights in [0.5, 2] and ``l2=0.1``.  Returns
    ``(max_abs_error, max_rel_error)`` over every entry of W and b, the
    relative error taken against ``max(|numeric|, 1e-8)``.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    y = rng.integers(0, n_classes, n_samples)
    W = rng.normal(size=(n_classes, n_features))
    b = rng.normal(size=n_classes)
    weights = rng.uniform(0.5, 2.0, n_samples)
    l2 = 0.1

    def loss(W_, b_):
        return loss_and_gradient(W_, X, y, b_, sample_weight=weights, l2=l2)[0]

    _, grad_W, grad_b = loss_and_gradient(W, X, y, b, sample_weight=weights, l2=l2)
    params = np.concatenate([W.ravel(), b])
    analytic = np.concatenate([grad_W.ravel(), grad_b])
    numeric = np.empty_like(params)
    for j in range(params.size):
        values = []
        for step in (-2, -1, 1, 2):
            p = params.copy()
            p[j] += step * h
            values.append(loss(p[: W.size].reshape(W.shape), p[W.size :]))
        f_m2, f_m1, f_p1, f_p2 = values
        numeric[j] = (f_m2 - 8 * f_m1 + 8 * f_p1 - f_p2) / (12 * h)
    abs_err = np.abs(analytic - numeric)
    rel_err = abs_err / np.maximum(np.abs(numeric), 1e-8)
    return float(abs_err.max()), float(rel_err.max())


def _gradient_check(W, X, y, b, l2):
    """Errors of the analytic gradient of the loss at (W, b), as a dict.

    ``csoftmax.check_gradient`` (central differences) when the package has
    it, else :func:`five_point_gradient_check`.
    """
    import importlib

    check_gradient = getattr(importlib.import_module(__package__), "check_gradient", None)
    if check_gradient is not None:
        result = check_gradient(W, X, y, b, l2=l2)
        summary = {
            "method": "five-point differences",
            "max_abs_error": result.max_abs_error,
            "max_rel_error": result.max_rel_error,
            "n_checked": result.n_checked,
            "passed": bool(result.passed),
        }
    else:
        summary = dict(method="five-point differences", **five_point_gradient_check(W, X, y, b, l2=l2))
    _, grad_W, grad_b = loss_and_gradient(W, X, y, b, l2=l2)
    summary["max_abs_gradient"] = float(max(np.abs(grad_W).max(), np.abs(grad_b).max()))
    return summary


def _format_gradient_check(summary, where, relative=True):
    verdict = "PASSED" if summary["passed"] else "FAILED"
    if relative:
        errors = f"max abs error {summary['max_abs_error']:.2e}, max rel error {summary['max_rel_error']:.2e}"
    else:
        # At the solution the gradient is ~0, so relative errors say little.
        errors = (
            f"max abs error {summary['max_abs_error']:.2e} "
            f"(largest gradient entry {summary['max_abs_gradient']:.2e})"
        )
    return f"gradient check {where} ({summary['n_checked']} entries, {summary['method']}):\n  {errors} -> {verdict}"


# ---------------------------------------------------------------------------
# Data files
# ---------------------------------------------------------------------------


@dataclass
class Dataset:
    X: np.ndarray
    y: object  # ndarray of labels, or None
    name: str


def _check_readable(path):
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a data file")


def _check_output_path(option, path):
    """Fail before the work when an output file cannot be created."""
    if path is None:
        return
    if not path.strip():
        raise UserError(f"{option} needs a file name")
    parent = Path(path).parent
    if not parent.is_dir():
        raise UserError(f"{option} {path}: cannot write (directory {parent} does not exist)")
    if Path(path).is_dir():
        raise UserError(f"{option} {path}: cannot write (is a directory)")


def _check_features(X, where):
    if X.ndim != 2:
        raise UserError(f"{where}: X must be a 2-D array (samples x features); got shape {X.shape}")
    if X.dtype.kind not in "biuf":
        raise UserError(f"{where}: X must hold numbers; got dtype {X.dtype}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise UserError(f"{where}: X is empty (shape {X.shape})")
    X = np.asarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        row, col = (int(v) for v in np.argwhere(~np.isfinite(X))[0])
        raise UserError(f"{where}: X has a NaN or infinite value at row {row}, column {col}")
    return X


def _check_labels(y, n_samples, where):
    if y.ndim != 1:
        raise UserError(f"{where}: y must be a 1-D array of class labels; got shape {y.shape}")
    if y.shape[0] != n_samples:
        raise UserError(f"{where}: X has {n_samples} samples but y has {y.shape[0]} labels")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or (y != np.round(y)).any():
            raise UserError(f"{where}: y must hold class labels (integers or strings); found non-integer values")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "biuUS":
        raise UserError(f"{where}: y must hold class labels (integers or strings); got dtype {y.dtype}")
    return y


def _load_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: not a .npz archive (np.savez writes one, with arrays X and y)")
    with archive:
        names = list(archive.files)
        if "X" not in names:
            have = ", ".join(names) if names else "no arrays"
            raise UserError(f"{path}: no array named X (it has {have}); save the features as X and the labels as y")
        try:
            X = archive["X"]
            y = archive["y"] if "y" in names else None
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: cannot read its arrays ({exc})") from None
    X = _check_features(X, path)
    if y is not None:
        y = _check_labels(y, X.shape[0], path)
    return X, y


def _is_number(cell):
    try:
        float(cell)
    except ValueError:
        return False
    return True


_INT_RE = re.compile(r"^[+-]?\d+$")


def _parse_labels(cells, path, column_name):
    if any(cell == "" for cell in cells):
        line = cells.index("") + 1
        raise UserError(f"{path}: empty label in column {column_name} (data row {line})")
    if all(_INT_RE.match(cell) for cell in cells):
        return np.array([int(cell) for cell in cells], dtype=np.int64)
    if all(_is_number(cell) for cell in cells):
        values = np.array([float(cell) for cell in cells])
        if np.isfinite(values).all() and (values == np.round(values)).all():
            return values.astype(np.int64)
    return np.array(cells, dtype=str)


def _resolve_label_column(label, header, n_columns, path):
    if header is not None and label in header:
        return header.index(label)
    if _INT_RE.match(label):
        index = int(label)
        if not -n_columns <= index < n_columns:
            raise UserError(f"{path}: --label {label} is out of range for {n_columns} columns")
        return index % n_columns
    if header is None:
        raise UserError(f"{path}: has no header row, so --label must be a column number (0-based); got {label!r}")
    raise UserError(f"{path}: no column named {label!r} (columns: {', '.join(header)})")


def _load_csv(path, label=None, n_model_features=None):
    """Read a CSV file of numbers, with an optional header and label column.

    The first row is a header when one of its cells is not a number while the
    cell below it is.  The label column is ``label`` (a header name or a
    0-based column number), else the last column; with ``n_model_features``
    (prediction) and no ``label``, a file with exactly that many columns has
    no labels.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = []
            reader = csv.reader(handle)
            for row in reader:
                cells = [cell.strip() for cell in row]
                if cells and any(cells):
                    rows.append((reader.line_num, cells))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text CSV file") from None
    except csv.Error as exc:
        raise UserError(f"{path}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not rows:
        raise UserError(f"{path}: no data rows")
    header = None
    first = rows[0][1]
    second = rows[1][1] if len(rows) > 1 else None
    if second is not None and len(second) == len(first):
        if any(not _is_number(a) and _is_number(b) for a, b in zip(first, second)):
            header = first
    elif not any(_is_number(cell) for cell in first):
        header = first
    if header is not None:
        rows = rows[1:]
        if not rows:
            raise UserError(f"{path}: a header row but no data rows")
    n_columns = len(header) if header is not None else len(rows[0][1])
    for line, cells in rows:
        if len(cells) != n_columns:
            raise UserError(f"{path}, line {line}: {len(cells)} cells where the file has {n_columns} columns")

    if label is not None:
        label_column = _resolve_label_column(label, header, n_columns, path)
    elif n_model_features is not None and n_columns == n_model_features:
        label_column = None
    elif n_model_features is not None and n_columns != n_model_features + 1:
        raise UserError(
            f"{path}: {n_columns} columns, but the model needs {n_model_features} feature columns "
            "(and optionally a label column)"
        )
    else:
        label_column = n_columns - 1
    if label_column is not None and n_columns < 2:
        raise UserError(f"{path}: one column only: need features and a label column")

    feature_columns = [j for j in range(n_columns) if j != label_column]
    X = np.empty((len(rows), len(feature_columns)))
    for i, (line, cells) in enumerate(rows):
        for k, j in enumerate(feature_columns):
            try:
                X[i, k] = float(cells[j])
            except ValueError:
                name = f" ({header[j]})" if header is not None else ""
                raise UserError(f"{path}, line {line}, column {j + 1}{name}: {cells[j]!r} is not a number") from None
            if not math.isfinite(X[i, k]):
                raise UserError(f"{path}, line {line}, column {j + 1}: {cells[j]!r} is not a finite number")
    y = None
    if label_column is not None:
        name = header[label_column] if header is not None else str(label_column + 1)
        y = _parse_labels([cells[label_column] for _, cells in rows], path, name)
    return X, y


def load_dataset(path, label=None, n_model_features=None):
    """The built-in digits (``path=None``), an ``.npz`` with X (and y), or a ``.csv`` file."""
    if path is None:
        from .datasets import load_digits8x8

        X, y = load_digits8x8(return_X_y=True)
        return Dataset(X, y, BUILTIN_NAME)
    _check_readable(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        if label is not None:
            raise UserError(f"{path}: --label applies to CSV files; an .npz file has its labels in y")
        X, y = _load_npz(path)
    elif suffix in (".csv", ".txt"):
        X, y = _load_csv(path, label, n_model_features)
    else:
        raise UserError(f"{path}: unknown data format {suffix or '(no suffix)'!r}; use .npz (arrays X, y) or .csv")
    return Dataset(X, y, path)


# ---------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------


def _isatty(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressBar:
    """A text progress bar over solver iterations.

    On a terminal the line is redrawn in place with ``\\r``; elsewhere (a
    file, a pipe, CI logs) one line is printed at iterations 1, 2, 4, 8, ...
    and at the end.
    """

    def __init__(self, total, unit, stream, enabled=True, width=30):
        self.total = max(1, int(total))
        self.unit = unit
        self.stream = stream
        self.enabled = enabled
        self.width = width
        self.tty = _isatty(stream)
        self.last = None
        self.last_printed = None
        self._drawn = 0

    def _text(self, step, value):
        filled = round(self.width * min(step, self.total) / self.total)
        bar = "#" * filled + "." * (self.width - filled)
        digits = len(str(self.total))
        return f"  [{bar}] {step:>{digits}}/{self.total} {self.unit}  objective {value:.6f}"

    def update(self, step, value):
        self.last = (step, value)
        if not self.enabled:
            return
        text = self._text(step, value)
        if self.tty:
            self.stream.write("\r" + text.ljust(self._drawn))
            self._drawn = len(text)
            self.stream.flush()
        elif step & (step - 1) == 0:
            self.stream.write(text + "\n")
            self.last_printed = step

    def close(self):
        if not self.enabled or self.last is None:
            return
        step, value = self.last
        text = self._text(step, value)
        if self.tty:
            self.stream.write("\r" + text.ljust(self._drawn) + "\n")
        elif self.last_printed != step:
            self.stream.write(text + "\n")
        self.stream.flush()


# "[SoftmaxRegression newton-cg] iteration   3: objective 0.25, ..." (verbose output of fit).
_PROGRESS_RE = re.compile(
    r"\b(?:iteration|epoch)\s+(\d+)\b.*?\b(?:objective|loss)\b\W*([-+]?[0-9.]+(?:e[-+]?\d+)?|[-+]?inf|nan)",
    re.IGNORECASE,
)


class _VerboseReader(io.TextIOBase):
    """A stdout stand-in that turns the estimator's verbose lines into progress updates."""

    def __init__(self, on_progress, passthrough):
        self._on_progress = on_progress
        self._passthrough = passthrough
        self._buffer = ""

    def writable(self):
        return True

    def write(self, text):
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._line(line)
        return len(text)

    def flush(self):
        pass

    def _line(self, line):
        match = _PROGRESS_RE.search(line)
        if match:
            self._on_progress(int(match.group(1)), float(match.group(2)))
        elif line.strip():
            self._passthrough.write(line + "\n")


# ---------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------


def confusion_matrix(y_true, y_pred, classes):
    """Counts ``[i, j]`` of samples of class ``classes[i]`` predicted as ``classes[j]``."""
    index = {label: k for k, label in enumerate(np.asarray(classes).tolist())}
    counts = np.zeros((len(index), len(index)), dtype=np.int64)
    for t, p in zip(np.asarray(y_true).tolist(), np.asarray(y_pred).tolist()):
        counts[index[t], index[p]] += 1
    return counts


def format_confusion_matrix(counts, classes):
    labels = [str(c) for c in np.asarray(classes).tolist()]
    width = max(4, max(len(s) for s in labels) + 1, len(str(int(counts.max()))) + 1)
    first = max(10, max(len(s) for s in labels))
    corner = "true\\pred"
    lines = [f"{corner:>{first}}" + "".join(f"{s:>{width}}" for s in labels) + "  recall"]
    for i, label in enumerate(labels):
        row_total = counts[i].sum()
        recall = f"{counts[i, i] / row_total:.3f}" if row_total else "  -  "
        lines.append(f"{label:>{first}}" + "".join(f"{int(v):>{width}}" for v in counts[i]) + f"   {recall}")
    return lines


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _encode(y, classes):
    """Indices of the labels ``y`` in ``classes`` (sorted); -1 where absent."""
    index = np.searchsorted(classes, y)
    index = np.clip(index, 0, len(classes) - 1)
    found = classes[index] == y
    return np.where(found, index, -1).astype(np.int64)


# ---------------------------------------------------------------------------
# The figure
# ---------------------------------------------------------------------------

FIGURE_WIDTH_IN = 10.0
FIGURE_HEIGHT_IN = 7.5
FIGURE_DPI = 100


def draw_figure(
    path, coef, classes, loss_curve, counts, title, start_objective=None, matrix_of="test set", step="iteration"
):
    """Weight templates (when D is a square), objective curve and confusion matrix, in one PNG.

    ``start_objective`` is the objective before the first iteration (drawn
    at iteration 0).  Raises ImportError without matplotlib.  The figure is
    ``FIGURE_WIDTH_IN x FIGURE_HEIGHT_IN`` inches at ``FIGURE_DPI`` (1000 x
    750 pixels), or 1000 x 400 pixels without templates.
    """
    from matplotlib.figure import Figure

    n_classes, n_features = coef.shape
    side = math.isqrt(n_features)
    templates = side * side == n_features and n_features > 1
    labels = [str(c) for c in np.asarray(classes).tolist()]
    height = FIGURE_HEIGHT_IN if templates else 4.0
    fig = Figure(figsize=(FIGURE_WIDTH_IN, height), dpi=FIGURE_DPI, layout="constrained")
    fig.suptitle(title, fontsize=11)
    if templates:
        top, bottom = fig.subfigures(2, 1, height_ratios=[1.0, 1.15])
        n_show = min(n_classes, 20)
        n_cols = min(n_show, 5 if n_show <= 10 else 10)
        n_rows = math.ceil(n_show / n_cols)
        axes = top.subplots(n_rows, n_cols, squeeze=False)
        limit = float(np.abs(coef[:n_show]).max()) or 1.0
        image = None
        for k, ax in enumerate(axes.ravel()):
            ax.set_xticks([])
            ax.set_yticks([])
            if k >= n_show:
                ax.set_axis_off()
                continue
            image = ax.imshow(coef[k].reshape(side, side), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"class {labels[k]}", fontsize=9)
        top.colorbar(image, ax=axes, shrink=0.8, label="weight")
        more = f" (first {n_show} of {n_classes})" if n_show < n_classes else ""
        top.suptitle(f"learned weight templates W[k] as {side}x{side} images{more}", fontsize=10)
    else:
        bottom = fig
    ax_curve, ax_conf = bottom.subplots(1, 2, width_ratios=[1.2, 1.0])

    curve = list(loss_curve)
    first = 1
    if start_objective is not None:
        curve.insert(0, start_objective)
        first = 0
    if curve:
        iterations = np.arange(first, first + len(curve))
        ax_curve.plot(iterations, curve, marker="o", markersize=3)
    else:
        ax_curve.text(0.5, 0.5, "no iterations recorded", ha="center", va="center", transform=ax_curve.transAxes)
    ax_curve.set_xlabel(step)
    ax_curve.set_ylabel("objective (mean neg. log-lik. + L2)")
    ax_curve.set_title(f"objective per {step}", fontsize=10)
    ax_curve.grid(True, alpha=0.3)

    ax_conf.imshow(counts, cmap="Blues")
    threshold = counts.max() / 2 if counts.size else 0
    if n_classes <= 20:
        for i in range(n_classes):
            for j in range(n_classes):
                if counts[i, j]:
                    color = "white" if counts[i, j] > threshold else "black"
                    ax_conf.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=color)
        ax_conf.set_xticks(range(n_classes), labels, fontsize=8)
        ax_conf.set_yticks(range(n_classes), labels, fontsize=8)
    ax_conf.set_xlabel("predicted class")
    ax_conf.set_ylabel("true class")
    accuracy = np.trace(counts) / counts.sum() if counts.sum() else float("nan")
    ax_conf.set_title(f"confusion matrix, {matrix_of} (accuracy {accuracy:.3f})", fontsize=10)
    fig.savefig(path, dpi=FIGURE_DPI)


PLOT_HINT = 'pip install "csoftmax[plot]" (or: pip install matplotlib)'


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def _split(data, test_size, seed):
    from .datasets import train_test_split

    if test_size == 0:
        return data.X, None, data.y, None
    try:
        X_train, X_test, y_train, y_test = train_test_split(data.X, data.y, test_size=test_size, random_state=seed)
    except ValueError as exc:
        raise UserError(f"{data.name}: cannot split {len(data.y)} samples: {exc}") from None
    return X_train, X_test, y_train, y_test


def _make_estimator(args, verbose):
    from ._estimator import SoftmaxRegression

    kwargs = dict(
        C=args.C,
        solver=args.solver,
        max_iter=args.epochs if args.solver == "sgd" else args.max_iter,
        tol=args.tol,
        n_threads=args.threads,
        random_state=args.seed,
        verbose=verbose,
    )
    if args.solver == "sgd":
        kwargs["batch_size"] = args.batch_size
    return SoftmaxRegression(**kwargs)


def _check_train_args(args):
    if args.solver != "sgd":
        options = (("--epochs", args.epochs), ("--batch-size", args.batch_size))
        given = [name for name, value in options if value is not None]
        if given:
            raise UserError(f"{' and '.join(given)} apply to --solver sgd only (this run uses --solver {args.solver})")
    else:
        args.epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
        args.batch_size = 32 if args.batch_size is None else args.batch_size
    if args.solver == "lbfgs":
        import importlib.util

        if importlib.util.find_spec("scipy") is None:
            raise UserError("--solver lbfgs needs SciPy (pip install scipy); --solver newton-cg needs NumPy only")
    try:
        args.n_threads_resolved = resolve_n_threads(args.threads)
    except (TypeError, ValueError) as exc:
        raise UserError(f"--threads: {exc}") from None


def _settings(args):
    settings = {
        "solver": args.solver,
        "C": args.C,
        "tol": args.tol,
        "fit_intercept": True,
    }
    if args.solver == "sgd":
        settings.update(epochs=args.epochs, batch_size=args.batch_size)
    else:
        settings["max_iter"] = args.max_iter
    settings.update(n_threads=args.n_threads_resolved, seed=args.seed, test_size=args.test_size)
    return settings


def _save_model(path, estimator, settings, summary):
    classes = np.asarray(estimator.classes_)
    if classes.dtype.kind == "O":
        classes = classes.astype(str)
    meta = dict(settings, version=__version__, data=summary["data"], n_iter=summary["n_iter"],
                train_accuracy=summary["train_accuracy"], test_accuracy=summary["test_accuracy"])
    try:
        with open(path, "wb") as handle:
            np.savez(
                handle,
                format=np.array(MODEL_FORMAT),
                coef=np.asarray(estimator.coef_, dtype=np.float64),
                intercept=np.asarray(estimator.intercept_, dtype=np.float64),
                classes=classes,
                settings=np.array(json.dumps(_jsonable(meta))),
            )
    except OSError as exc:
        raise UserError(f"--save {path}: cannot write ({exc.strerror or exc})") from None


def _cmd_train(args):
    start = time.perf_counter()
    for option, path in (("--save", args.save), ("--plot", args.plot)):
        _check_output_path(option, path)
    _check_train_args(args)
    human = not (args.quiet or args.json)
    stdout = sys.stdout

    def say(text=""):
        if human:
            print(text, file=stdout)

    data = load_dataset(args.data, args.label)
    if data.y is None:
        raise UserError(f"{data.name}: no labels (an .npz file needs an array y)")
    X_train, X_test, y_train, y_test = _split(data, args.test_size, args.seed)
    n_train = X_train.shape[0]
    settings = _settings(args)
    estimator = _make_estimator(args, verbose=1)
    n_classes_all = len(np.unique(data.y))

    say(f"csoftmax {__version__}: softmax regression on the {data.name}")
    split = (
        f"stratified split (test_size={args.test_size}, seed={args.seed}): {n_train} train, {X_test.shape[0]} test"
        if X_test is not None
        else "no test set (--test-size 0)"
    )
    say(f"data: {data.X.shape[0]} samples x {data.X.shape[1]} features, {n_classes_all} classes; {split}")
    shown = {k: v for k, v in settings.items() if k not in ("seed", "test_size", "n_threads")}
    say(
        f"solver: {args.solver}  "
        + "  ".join(f"{k}={v}" for k, v in shown.items() if k != "solver")
        + f"  threads={args.n_threads_resolved}  kernels={config()['isa']}"
    )
    say(f"objective: mean negative log-likelihood + ||W||^2 / (2 C n_train), n_train={n_train}")

    unit = "epochs" if args.solver == "sgd" else "iterations"
    total = args.epochs if args.solver == "sgd" else args.max_iter
    bar = ProgressBar(total, unit, stdout, enabled=human)
    passthrough = stdout if human else sys.stderr
    fit_start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with contextlib.redirect_stdout(_VerboseReader(bar.update, passthrough)):
                estimator.fit(X_train, y_train)
        except NotImplementedError as exc:
            raise UserError(str(exc)) from None
        except ValueError as exc:
            raise UserError(f"{data.name}: {exc}") from None
        finally:
            bar.close()
    fit_time = time.perf_counter() - fit_start
    for w in caught:
        print(f"csoftmax: warning: {w.message}", file=sys.stderr)
    converged = not any(w.category.__name__ == "ConvergenceWarning" for w in caught)
    n_iter = int(estimator.n_iter_)
    loss_curve = [float(v) for v in getattr(estimator, "loss_curve_", [])]
    status = "converged" if converged else "stopped without converging"
    say(f"  {status} after {n_iter} {unit if n_iter != 1 else unit[:-1]} in {fit_time:.3f} s")

    classes = np.asarray(estimator.classes_)
    W = np.asarray(estimator.coef_, dtype=np.float64)
    b = np.asarray(estimator.intercept_, dtype=np.float64)
    l2 = 0.0 if math.isinf(args.C) else 1.0 / (args.C * n_train)
    train_index = _encode(y_train, classes)
    train_pred = estimator.predict(X_train)
    train_accuracy = float(np.mean(train_pred == y_train))
    train_ll = log_likelihood(W, X_train, train_index, b) / n_train
    objective = float(loss_and_gradient(W, X_train, train_index, b, l2=l2)[0])
    test_accuracy = test_ll = None
    if X_test is not None:
        test_index = _encode(y_test, classes)
        if (test_index < 0).any():
            missing = np.unique(np.asarray(y_test)[test_index < 0]).tolist()
            raise UserError(f"{data.name}: class(es) {missing} have too few samples to appear in the training set")
        test_pred = estimator.predict(X_test)
        test_accuracy = float(np.mean(test_pred == y_test))
        test_ll = log_likelihood(W, X_test, test_index, b) / X_test.shape[0]
        counts = confusion_matrix(y_test, test_pred, classes)
        matrix_of = "test set"
    else:
        counts = confusion_matrix(y_train, train_pred, classes)
        matrix_of = "training set"

    if test_accuracy is not None:
        say(f"accuracy: train {train_accuracy:.4f}, test {test_accuracy:.4f}")
        say(f"log-likelihood per sample: train {train_ll:.4f}, test {test_ll:.4f}")
    else:
        say(f"accuracy: train {train_accuracy:.4f}")
        say(f"log-likelihood per sample: train {train_ll:.4f}")
    say(f"objective at the solution: {objective:.6f}")

    check_start = time.perf_counter()
    check = _gradient_check(W, X_train, train_index, b, l2)
    check_time = time.perf_counter() - check_start
    say(_format_gradient_check(check, "at the solution", relative=False))
    say(f"confusion matrix ({matrix_of}; rows: true class, columns: predicted class):")
    for line in format_confusion_matrix(counts, classes):
        say("  " + line)

    summary = {
        "version": __version__,
        "data": data.name,
        "n_samples": int(data.X.shape[0]),
        "n_features": int(data.X.shape[1]),
        "n_classes": int(len(classes)),
        "classes": classes,
        "n_train": int(n_train),
        "n_test": 0 if X_test is None else int(X_test.shape[0]),
        "settings": settings,
        "n_iter": n_iter,
        "converged": converged,
        "warnings": [str(w.message) for w in caught],
        "loss_curve": loss_curve,
        "objective": objective,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
        "train_log_likelihood": float(train_ll),
        "test_log_likelihood": None if test_ll is None else float(test_ll),
        "gradient_check": check,
        "confusion_matrix": counts,
        "confusion_matrix_of": matrix_of,
        "fit_time_s": fit_time,
        "gradient_check_time_s": check_time,
    }
    if args.save:
        _save_model(args.save, estimator, settings, summary)
        say(f"model saved to {args.save}")
    summary["model"] = args.save
    summary["plot"] = None
    if args.plot:
        title = f"csoftmax {args.solver}, C={args.C}: {data.name}"
        try:
            # The solvers start from W = 0, b = 0 (the CLI never warm-starts).
            start_objective = loss_and_gradient(np.zeros_like(W), X_train, train_index, np.zeros_like(b), l2=l2)[0]
            draw_figure(args.plot, W, classes, loss_curve, counts, title, float(start_objective), matrix_of, unit[:-1])
        except ImportError:
            print(f"csoftmax: --plot needs matplotlib, which is not installed: {PLOT_HINT}; "
                  f"{args.plot} not written", file=sys.stderr)
        except OSError as exc:
            raise UserError(f"--plot {args.plot}: cannot write ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise UserError(f"--plot {args.plot}: {exc}") from None
        else:
            summary["plot"] = args.plot
            say(f"figure saved to {args.plot}")
    wall = time.perf_counter() - start
    summary["wall_time_s"] = wall
    say(f"wall time: {wall:.2f} s (fit {fit_time:.2f} s, gradient check {check_time:.2f} s)")
    if args.json:
        print(json.dumps(_jsonable(summary), indent=2))
    elif args.quiet:
        test = f", test accuracy {test_accuracy:.4f}" if test_accuracy is not None else ""
        print(f"train accuracy {train_accuracy:.4f}{test}, {n_iter} {unit}, {wall:.2f} s")
    return 0 if check["passed"] else 1


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------


def load_model(path):
    """``(coef, intercept, classes, settings)`` from a file written by ``csoftmax train --save``."""
    _check_readable(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a csoftmax model file ({exc})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise UserError(f"{path}: not a csoftmax model file (write one with csoftmax train --save)")
    with archive:
        missing = [key for key in ("format", "coef", "intercept", "classes") if key not in archive.files]
        if missing:
            raise UserError(
                f"{path}: not a csoftmax model file (no {', '.join(missing)}); write one with csoftmax train --save"
            )
        try:
            fmt = str(archive["format"])
            coef = np.asarray(archive["coef"], dtype=np.float64)
            intercept = np.asarray(archive["intercept"], dtype=np.float64)
            classes = archive["classes"]
            settings = json.loads(str(archive["settings"])) if "settings" in archive.files else {}
        except (OSError, ValueError, TypeError, zipfile.BadZipFile) as exc:
            raise UserError(f"{path}: damaged model file ({exc})") from None
    if fmt != MODEL_FORMAT:
        raise UserError(f"{path}: unknown model format {fmt!r} (this csoftmax reads {MODEL_FORMAT!r})")
    n_classes = classes.shape[0] if classes.ndim == 1 else -1
    if coef.ndim != 2 or intercept.shape != (coef.shape[0],) or n_classes != coef.shape[0]:
        raise UserError(
            f"{path}: damaged model file (coef {coef.shape}, intercept {intercept.shape}, classes {classes.shape})"
        )
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise UserError(f"{path}: damaged model file (non-finite weights)")
    return coef, intercept, classes, settings


def _cmd_predict(args):
    _check_output_path("--output", args.output)
    coef, intercept, classes, _ = load_model(args.model)
    n_features = coef.shape[1]
    data = load_dataset(args.data, args.label, n_model_features=n_features)
    if data.X.shape[1] != n_features:
        raise UserError(f"{data.name}: {data.X.shape[1]} features, but the model was trained on {n_features}")
    y = data.y
    index = None
    if y is not None:
        if y.dtype.kind in "US" and classes.dtype.kind in "iub" or y.dtype.kind in "iub" and classes.dtype.kind in "US":
            index = np.full(len(y), -1)
        else:
            index = _encode(y, classes)
        if (index < 0).any():
            unseen = np.unique(y[index < 0]).tolist()
            shown = ", ".join(map(str, unseen[:5])) + (", ..." if len(unseen) > 5 else "")
            known = ", ".join(map(str, classes.tolist()[:12])) + (", ..." if len(classes) > 12 else "")
            raise UserError(f"{data.name}: labels the model was not trained on: {shown} (its classes: {known})")
    try:
        n_threads = resolve_n_threads(args.threads)
    except (TypeError, ValueError) as exc:
        raise UserError(f"--threads: {exc}") from None
    P = predict_proba(coef, data.X, intercept, n_threads=n_threads)
    predicted = classes[np.argmax(P, axis=1)]

    header = ["index"] + (["true"] if y is not None else []) + ["predicted"] + [f"p_{c}" for c in classes.tolist()]
    if args.output:
        try:
            handle = open(args.output, "w", newline="")
        except OSError as exc:
            raise UserError(f"--output {args.output}: cannot write ({exc.strerror or exc})") from None
    else:
        handle = sys.stdout
    try:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for i in range(P.shape[0]):
            row = [i] + ([y[i]] if y is not None else []) + [predicted[i]]
            writer.writerow(row + [f"{p:.6f}" for p in P[i]])
    finally:
        if handle is not sys.stdout:
            handle.close()
    messages = []
    if args.output:
        messages.append(f"wrote {P.shape[0]} predictions to {args.output}")
    if y is not None:
        correct = int(np.sum(predicted == y))
        messages.append(f"accuracy {correct / len(y):.4f} ({correct} of {len(y)} correct)")
    report = sys.stdout if args.output else sys.stderr
    for message in messages:
        print(message, file=report)
    return 0


# ---------------------------------------------------------------------------
# gradcheck, info, bench, selfcheck
# ---------------------------------------------------------------------------


def _cmd_gradcheck(args):
    data = load_dataset(args.data, args.label)
    if data.y is None:
        raise UserError(f"{data.name}: no labels (an .npz file needs an array y)")
    classes, index = np.unique(data.y, return_inverse=True)
    index = index.reshape(-1).astype(np.int64)
    n_samples, n_features = data.X.shape
    rng = np.random.default_rng(args.seed)
    W = rng.normal(scale=0.1, size=(len(classes), n_features))
    b = rng.normal(scale=0.1, size=len(classes))
    l2 = 0.0 if math.isinf(args.C) else 1.0 / (args.C * n_samples)
    print(f"data: {data.name}: {n_samples} samples x {n_features} features, {len(classes)} classes")
    print(f"loss: mean negative log-likelihood + (l2/2) ||W||^2, l2 = 1/(C n) = {l2:.4g}; "
          f"random W, b ~ N(0, 0.1^2) (seed {args.seed})")
    start = time.perf_counter()
    check = _gradient_check(W, data.X, index, b, l2)
    print(_format_gradient_check(check, "at random parameters") + f" in {time.perf_counter() - start:.2f} s")
    return 0 if check["passed"] else 1


def _cmd_info(args):
    show_config()
    return 0


def _cmd_selfcheck(args):
    show_config()
    abs_err, rel_err = finite_difference_check()
    ok = rel_err < 1e-6
    print()
    print("gradient check (200 x 8 inputs, 4 classes, sample weights, l2=0.1; five-point differences):")
    print(f"  max abs error {abs_err:.3e}, max rel error {rel_err:.3e} -> {'PASSED' if ok else 'FAILED'}")
    return 0 if ok else 1


def _is_source_root(root):
    try:
        return (root / "setup.py").is_file() and "csoftmax" in (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return False


def find_benchmark_script(package_dir=None, cwd=None):
    """``benchmarks/run.py`` of the csoftmax source checkout, or None when not in one.

    Looked for next to the imported package (a checkout or an editable
    install) and in the current directory (``pip install .`` run from the
    checkout).
    """
    package_dir = Path(package_dir) if package_dir is not None else Path(__file__).resolve().parent
    cwd = Path(cwd) if cwd is not None else Path.cwd()
    for root in (package_dir.parent, cwd):
        script = root / "benchmarks" / "run.py"
        if script.is_file() and _is_source_root(root):
            return script
    return None


def _cmd_bench(args):
    script = find_benchmark_script()
    if script is None:
        print(
            "csoftmax: the benchmark suite (benchmarks/run.py) lives in the csoftmax source repository, "
            "not in the installed package; run csoftmax bench from a source checkout",
            file=sys.stderr,
        )
        return EXIT_USAGE
    command = [sys.executable, str(script)] + (["--quick"] if args.quick else []) + list(args.bench_args)
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    print(f"running {' '.join(command[1:])}", file=sys.stderr)
    return subprocess.call(command, cwd=str(script.parent.parent), env=env)


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number; got {text!r}")
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0; got {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0; got {text!r}")
    return value


def _test_size(text):
    try:
        if _INT_RE.match(text.strip()) and int(text) >= 1:
            return int(text)
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a fraction in [0, 1) or a number of samples; got {text!r}"
        ) from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1) or a number of samples; got {text!r}")
    return value


def _thread_count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer (negative: all cores but |n|-1); got {text!r}") from None
    if value == 0:
        raise argparse.ArgumentTypeError("0 threads: use a positive count, or -1 for every core")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs; shows defaults that are set."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or "(default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


_DATA_HELP = (
    "data file: .npz with arrays X (samples x features) and y (labels), or .csv with the label in the last "
    "column (or the one named by --label); default: the built-in 8x8 binary digits"
)

_LABEL_HELP = "CSV label column: a header name or a 0-based number (default: last)"

_TRAIN_EPILOG = f"""\
C defaults to {DEFAULT_C}: the best test accuracy on the built-in digits among
C in 0.01 ... 10.  The objective is that of scikit-learn's multinomial
LogisticRegression with the same C:
    mean negative log-likelihood + ||W||^2 / (2 C n_train)   (intercepts not penalised).

examples:
  csoftmax train
  csoftmax train --solver lbfgs --C 1 --plot digits.png --save model.npz
  csoftmax train --data mydata.csv --label species --json
"""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="csoftmax",
        description="Fast softmax (multinomial logistic) regression on compiled OpenMP kernels.",
        epilog="Start with: csoftmax train    (help of a command: csoftmax COMMAND --help)",
    )
    parser.add_argument("--version", action="version", version=f"csoftmax {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="fit a model (default: the built-in 8x8 binary digits) and report on it",
        description="Fit SoftmaxRegression and print its progress, the accuracy, the log-likelihood,\n"
        "a gradient check at the solution and the confusion matrix.",
        epilog=_TRAIN_EPILOG,
        formatter_class=_Formatter,
    )
    p.add_argument("--data", metavar="FILE", help=_DATA_HELP)
    p.add_argument("--label", metavar="COLUMN", help=_LABEL_HELP)
    p.add_argument("--solver", choices=SOLVERS, default=DEFAULT_SOLVER, help="optimiser")
    p.add_argument(
        "--C", type=_positive_float, default=DEFAULT_C, help="inverse L2 regularisation strength (inf: none)"
    )
    p.add_argument("--max-iter", type=_positive_int, default=100, help="iterations of newton-cg / lbfgs")
    p.add_argument("--tol", type=_non_negative_float, default=1e-4, help="stop when max |gradient| <= tol")
    p.add_argument(
        "--epochs", type=_positive_int, default=None, help=f"passes over the data of sgd (default {DEFAULT_EPOCHS})"
    )
    p.add_argument("--batch-size", type=_positive_int, default=None, help="mini-batch size of sgd (default 32)")
    p.add_argument("--threads", type=_thread_count, default=None, help="threads of the kernels (default: every core)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/test split (and of sgd)")
    p.add_argument("--test-size", type=_test_size, default=DEFAULT_TEST_SIZE,
                   help="test fraction (or number of samples) of the stratified split; 0: no test set")
    p.add_argument("--save", metavar="MODEL.npz", help="write coefficients, intercepts, classes and settings")
    p.add_argument("--plot", metavar="FIGURE.png", help="draw weight templates, objective curve and confusion matrix "
                   "(needs matplotlib: pip install \"csoftmax[plot]\")")
    output = p.add_mutually_exclusive_group()
    output.add_argument("--quiet", action="store_true", help="print one summary line only")
    output.add_argument("--json", action="store_true", help="print a machine-readable summary (JSON) only")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "predict",
        help="predictions and class probabilities of a saved model",
        description="Predict with a model saved by 'csoftmax train --save'.  Writes CSV rows\n"
        "index[,true],predicted,p_<class>... to stdout or --output; when the data have labels,\n"
        "the accuracy goes to stderr (to stdout with --output).",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", metavar="MODEL.npz", required=True, help="model file from csoftmax train --save")
    p.add_argument(
        "--data", metavar="FILE", help=_DATA_HELP.replace("the label in the last column", "an optional label column")
    )
    p.add_argument(
        "--label",
        metavar="COLUMN",
        help="CSV label column (default: the last one, if the file has one more column than the model has features)",
    )
    p.add_argument("--output", metavar="FILE.csv", help="write the predictions here instead of stdout")
    p.add_argument("--threads", type=_thread_count, default=None, help="threads of the kernels (default: every core)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser(
        "gradcheck",
        help="check the analytic gradient against finite differences on a data set",
        description="Compare the gradient of the penalised mean negative log-likelihood with finite\n"
        "differences at random parameters, on the built-in digits or --data.\n"
        "Exit status 1 if it fails.",
        formatter_class=_Formatter,
    )
    p.add_argument("--data", metavar="FILE", help=_DATA_HELP)
    p.add_argument("--label", metavar="COLUMN", help=_LABEL_HELP)
    p.add_argument("--C", type=_positive_float, default=DEFAULT_C, help="inverse L2 regularisation strength")
    p.add_argument("--seed", type=int, default=0, help="seed of the random parameters")
    p.set_defaults(func=_cmd_gradcheck)

    p = sub.add_parser("info", help="print the build and runtime configuration",
                       description="Print version, OpenMP, threads, kernels, compiler and flags.")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "bench",
        help="run the benchmark suite (from a source checkout)",
        usage="csoftmax bench [-h] [--quick] [ARGUMENTS OF benchmarks/run.py ...]",
        description="Run benchmarks/run.py of the csoftmax source checkout; other arguments are passed on. "
        "Exit status 2 when csoftmax is not run from a source checkout.",
    )
    p.add_argument("--quick", action="store_true", help="the quick mode (a few seconds)")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "selfcheck",
        help="configuration and a gradient check on a small random problem (for CI)",
        description="Print the configuration and check the gradient against five-point finite differences "
        "on a random 200 x 8 problem with 4 classes, sample weights and l2=0.1. Exit status 1 if it fails.",
    )
    p.set_defaults(func=_cmd_selfcheck)
    return parser


def _import_estimator_without_sklearn():
    """Import the estimator without scikit-learn, which it only uses when installed.

    Importing scikit-learn takes over a second (it loads scipy.stats), more
    than the whole ``csoftmax train`` run; the estimator works the same
    without it.  Done only when running as the ``csoftmax`` program, never
    when another program has imported either module.
    """
    if "sklearn" in sys.modules or "csoftmax._estimator" in sys.modules:
        return
    sys.modules["sklearn"] = None  # makes "import sklearn..." raise ImportError
    try:
        from . import _estimator  # noqa: F401
    except ImportError:
        pass
    finally:
        del sys.modules["sklearn"]


def main(argv=None):
    """Run the ``csoftmax`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.bench_args = extra
    if argv is None and args.command == "train":
        _import_estimator_without_sklearn()
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        print("\ncsoftmax: error: choose a command (start with: csoftmax train)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except UserError as exc:
        sys.stdout.flush()
        print(f"csoftmax {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ncsoftmax {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (csoftmax predict | head): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
