"""Mutation check: do the tests catch small deliberate bugs in the core modules?

Each mutation replaces one exact snippet of a source file by a slightly wrong
one (a dropped term, a flipped condition, a lost argument) in a temporary copy
of the package and its tests, runs only the test files relevant to it, and
counts it *caught* when they fail. A *survived* mutation is a bug that the
test suite lets through: add or sharpen a test until it is caught.

Run it before changing the EM, the representation choice, ``meta_fit``, the
crowd labels, the command line or persistence, and after a refactor: a
snippet that is no longer found exactly once is an error, so the list is
kept in sync with the code (re-target the snippet to where the code went)::

    python scripts/mutation_check.py            # all mutations (a few minutes)
    python scripts/mutation_check.py --list     # the mutations, without running
    python scripts/mutation_check.py --only em_sparse_estep_no_annotators

The exit status is 1 when a mutation survived, a snippet is not found exactly
once, or the relevant tests fail without any mutation; 0 otherwise.
"""
# SPDX-License-Identifier: BSD-3-Clause

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "sklearn_metaannot"
#: Copied into the temporary tree: the package, its tests, the benchmarks (which
#: some tests run) and pytest's settings.
COPIED = (PACKAGE, "tests", "benchmarks", "pyproject.toml")
#: Seconds one mutation's tests may take before the run counts as caught
#: (a mutation that makes a loop run forever is caught, by the time limit).
TIME_LIMIT = 300


@dataclass(frozen=True)
class Mutation:
    """One small bug: ``old`` (found exactly once in ``file``) becomes ``new``.

    ``tests`` are paths relative to the repository (test files, or a module
    whose doctests should catch it); ``k`` is an optional ``pytest -k``
    expression that restricts them to the tests that matter.
    """

    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    k: str | None = None


P = f"{PACKAGE}/"
EM, CLS, SEL = P + "em/_steps.py", P + "_classifier.py", P + "adapt/_representation.py"
LEARN = P + "meta/_learner.py"
CROWD, VALID, CLI, PERSIST = (
    P + "crowd/_labels.py",
    P + "crowd/_validation.py",
    P + "cli.py",
    P + "io/_persistence.py",
)
T = "tests/"

MUTATIONS = [
    # -- the EM (em/_steps.py) and prediction ------------------------------------------
    Mutation(
        "em_dense_prior_ignores_b",
        EM,
        "    pi = (Nk + (b - 1.0)) / (n_total + K * (b - 1.0)).clamp_min(EPS)",
        "    pi = Nk / n_total.clamp_min(EPS)",
        (T + "test_em.py",),
    ),
    Mutation(
        "em_dense_confusion_rows_not_true_class",
        EM,
        'counts = torch.einsum("tnk,tnrl->trkl", lam, Y)',
        'counts = torch.einsum("tnk,tnrl->trlk", lam, Y)',
        (T + "test_em.py",),
    ),
    Mutation(
        "em_sparse_tau_dropped",
        EM,
        "    mu = (lam_w.T @ U) / (tau + Nk).clamp_min(EPS).unsqueeze(-1)",
        "    mu = (lam_w.T @ U) / Nk.clamp_min(EPS).unsqueeze(-1)",
        (T + "test_em.py",),
        k="sparse",
    ),
    Mutation(
        "em_sparse_confusion_not_transposed",
        EM,
        "    counts = counts.view(n_annotators, K, K).transpose(1, 2)",
        "    counts = counts.view(n_annotators, K, K)",
        (T + "test_em.py",),
        k="sparse",
    ),
    Mutation(
        "em_sparse_estep_no_annotators",
        EM,
        "        logits.index_add_(0, item[start:stop], log_At[slot[start:stop]])",
        "        pass",
        (T + "test_em.py",),
        k="sparse",
    ),
    Mutation(
        "em_sparse_estep_full_distance",
        EM,
        "    logits = log_pi - 0.5 * logits.clamp_min(0.0)",
        "    logits = log_pi - logits.clamp_min(0.0)",
        (T + "test_em.py",),
        k="sparse",
    ),
    Mutation(
        "em_sparse_one_iteration_less",
        EM,
        "like=U), gold)\n    for _ in range(n_iter):",
        "like=U), gold)\n    for _ in range(n_iter - 1):",
        (T + "test_em.py",),
        k="sparse",
    ),
    Mutation(
        "em_history_prior_counts_ignored",
        EM,
        "    counts = counts + _prior_pseudo_counts(c, K, like)\n"
        "    if prior_counts is not None:",
        "    counts = counts + _prior_pseudo_counts(c, K, like)\n    if False:",
        (T + "test_annotator_history.py",),
    ),
    Mutation(
        "em_gold_labels_not_pinned",
        EM,
        "    if gold is None:\n        return lam",
        "    if True:\n        return lam",
        (T + "test_gold_labels.py",),
    ),
    Mutation(
        # issue 27, bug 1
        "predict_ignores_class_prior",
        CLS,
        "                torch.from_numpy(np.log(self.class_prior_)),",
        "                torch.zeros(len(self.classes_), dtype=torch.float64),",
        (T + "test_classifier.py",),
        k="closed_form",
    ),
    Mutation(
        "fit_history_weight_ignored",
        CLS,
        "            history = float(self.history_weight) * history",
        "            history = 1.0 * history",
        (T + "test_annotator_history.py",),
        k="weight",
    ),
    # -- the representation choice (adapt/_representation.py) --------------------------
    Mutation(
        # issue 27, bug 3
        "selection_min_z_zero",
        SEL,
        "MIN_Z = 1.5",
        "MIN_Z = 0",
        (T + "test_selection.py",),
    ),
    Mutation(
        # issue 27, bug 4
        "selection_fit_drops_chance",
        SEL,
        "choose_representation(scores, default, min_z=MIN_Z, chance=1.0 / n_classes)",
        "choose_representation(scores, default, min_z=MIN_Z)",
        (T + "test_selection.py",),
    ),
    Mutation(
        "selection_takes_last_not_best_candidate",
        SEL,
        "if _z(s - ref) >= min_z and informative and s.mean() > best_mean:",
        "if _z(s - ref) >= min_z and informative:",
        (T + "test_selection.py",),
        k="choose_representation",
    ),
    Mutation(
        # held-out agreement fits its EM on the hidden items' labels too
        "selection_hidden_labels_leak_into_training",
        SEL,
        "            U[train],\n"
        "            torch.from_numpy(new_index[rows[kept]]),\n"
        "            torch.from_numpy(cols[kept]),\n"
        "            torch.from_numpy(codes[kept]),",
        "            U,\n"
        "            torch.from_numpy(rows),\n"
        "            torch.from_numpy(cols),\n"
        "            torch.from_numpy(codes),",
        (T + "test_selection.py",),
        k="held_out",
    ),
    Mutation(
        "selection_one_item_per_class_is_checked",
        SEL,
        "\nMIN_ITEMS_PER_CLASS = 2\n",
        "\nMIN_ITEMS_PER_CLASS = 1\n",
        (T + "test_selection.py",),
    ),
    Mutation(
        "selection_ignores_meta_selected_default",
        SEL,
        '    default = "input" if meta_encoder is None else meta_encoder.selected',
        '    default = "input"',
        (T + "test_selection.py",),
    ),
    Mutation(
        "selection_ignores_plausible_input_spaces",
        SEL,
        "    candidates = tuple(s for s in spaces if s in plausible or s in "
        '(default, "meta"))',
        "    candidates = tuple(spaces)",
        (T + "test_classifier.py",),
        k="plausible",
    ),
    # -- meta_fit ---------------------------------------------------------------
    Mutation(
        # issue 27, bug 2
        "meta_fit_keeps_the_last_epoch",
        LEARN,
        "            module.load_state_dict(keep_best.best_state_)\n",
        "",
        (T + "test_classifier.py",),
        k="early_stopping",
    ),
    Mutation(
        "meta_fit_ignores_pseudo_annotation",
        LEARN,
        "            pseudo_annotation=self.pseudo_annotation,",
        "            pseudo_annotation=False,",
        (T + "test_classifier.py",),
        k="pseudo_annotation",
    ),
    Mutation(
        "meta_fit_ignores_patience",
        LEARN,
        "            patience=self.patience,",
        "            patience=None,",
        (T + "test_classifier.py",),
        k="early_stopping",
    ),
    Mutation(
        "meta_fit_selects_among_input_spaces_only",
        SEL,
        '    chosen = max(val_scores, key=val_scores.get)  # ties go to "meta", listed '
        "first",
        "    chosen = max(input_scores, key=input_scores.get)",
        (T + "test_classifier.py",),
        k="beats_no_meta",
    ),
    Mutation(
        "meta_fit_checkpoint_not_mapped_to_cpu",
        P + "meta/_checkpoint.py",
        'state = torch.load(path, map_location="cpu", weights_only=True)',
        "state = torch.load(path, weights_only=True)",
        (T + "test_classifier.py",),
        k="gpu",
    ),
    # -- two objects: the learner, the frozen encoder, the recipe (issue 28) ------
    Mutation(
        "fit_never_meta_trains_again",
        CLS,
        "        if self.meta_learner.recipe() == encoder.recipe:\n",
        "        if True:\n",
        (T + "test_meta_learner.py",),
        k="meta_training_parameters",
    ),
    Mutation(
        "fit_always_meta_trains_again",
        CLS,
        "        if self.meta_learner.recipe() == encoder.recipe:\n",
        "        if False:\n",
        (T + "test_meta_learner.py",),
        k="em_parameters",
    ),
    Mutation(
        "recipe_counts_runtime_parameters",
        LEARN,
        '            "verbose",\n',
        "",
        (T + "test_meta_learner.py",),
        k="meta_training_parameters",
    ),
    Mutation(
        "meta_fit_clones_the_callbacks",
        CLS,
        "        learner = type(template)(**template.get_params(deep=False))",
        '        learner = __import__("sklearn.base").base.clone(template)',
        (T + "test_meta_learner.py",),
        k="callbacks",
    ),
    Mutation(
        "long_table_rows_not_matched_to_X",
        VALID,
        "        labels = _align_to_samples(labels, sample_ids, name)\n",
        "        labels = labels  # rows left in the table's order\n",
        (T + "test_meta_learner.py",),
        k="long_table",
    ),
    Mutation(
        "dawid_skene_counts_not_from_the_shared_statistics",
        P + "aggregation.py",
        "        confusions = labels.expected_counts(post) + a",
        "        confusions = labels.expected_counts(post).transpose(0, 2, 1) + a",
        (T + "test_meta_learner.py", T + "test_aggregation.py"),
    ),
    # -- semi-supervised episodes (episodes.py, meta/_learner.py, issue 25) ----------
    Mutation(
        "episodes_unlabelled_examples_labelled",
        P + "episodes.py",
        "codes.shape[1]), -1)",
        "codes.shape[1]), 0)",
        (T + "test_episodes.py",),
        k="unlabelled",
    ),
    Mutation(
        "episodes_distractors_from_the_task_classes",
        P + "episodes.py",
        "        chosen, distractors = chosen[: self.n_way], chosen[self.n_way :]",
        "        chosen, distractors = chosen[: self.n_way], chosen[: len(chosen) - "
        "self.n_way]",
        (T + "test_episodes.py",),
        k="unlabelled",
    ),
    Mutation(
        "learner_distractor_classes_not_clipped",
        LEARN,
        '    n = min(episode_kw.get("n_distractor_classes", 0), n_classes - n_way)',
        '    n = episode_kw.get("n_distractor_classes", 0)',
        (T + "test_meta.py",),
        k="semi_supervised",
    ),
    Mutation(
        "recipe_changed_by_the_unlabelled_parameters_off",
        LEARN,
        "if params[name] == 0:",
        "if False:",
        (T + "test_meta.py",),
        k="recipe",
    ),
    # -- the linear head (em/_heads.py, issue 29) -------------------------------------
    Mutation(
        "linear_head_estep_ignores_the_annotators",
        P + "em/_heads.py",
        "        logits = torch.log_softmax(U @ coef.T + intercept, dim=-1)\n"
        "        logits = add_crowd_log_likelihood_("
        "logits, item, annotator, label, log_A)",
        "        logits = torch.log_softmax(U @ coef.T + intercept, dim=-1)",
        (T + "test_heads.py",),
    ),
    Mutation(
        "linear_head_not_pulled_to_the_prototypes",
        P + "em/_heads.py",
        "            diff = theta - theta0",
        "            diff = 0.0 * (theta - theta0)",
        (T + "test_heads.py",),
    ),
    Mutation(
        "predict_ignores_the_linear_head",
        CLS,
        "        coef, intercept = (getattr(self, n, None) "
        'for n in ("coef_", "intercept_"))',
        "        coef, intercept = None, None",
        (T + "test_heads.py",),
    ),
    Mutation(
        "auto_head_always_linear",
        SEL,
        "    chosen = choose_representation(calibrated, heads[0], min_z=MIN_Z)",
        "    chosen = heads[-1]",
        (T + "test_heads.py",),
        k="auto",
    ),
    Mutation(
        "auto_head_never_linear",
        SEL,
        "    chosen = choose_representation(calibrated, heads[0], min_z=MIN_Z)",
        "    chosen = heads[0]",
        (T + "test_heads.py",),
        k="auto",
    ),
    Mutation(
        "predict_ignores_the_mlp_layer",
        CLS,
        "            hidden = tuple(torch.from_numpy(getattr(self, n)) "
        "for n in _HIDDEN)",
        "            hidden = None",
        (T + "test_heads.py",),
        k="mlp",
    ),
    Mutation(
        "mlp_gradient_ignores_the_relu",
        P + "em/_heads.py",
        "    dA = (dZ @ V) * (pre > 0)  # back through the hidden layer",
        "    dA = dZ @ V",
        (T + "test_heads.py",),
        k="mlp",
    ),
    Mutation(
        "feature_weight_never_below_one",
        SEL,
        "        candidates = {weights[0]: S[:, 0], weights[best]: S[:, best]}",
        "        candidates = {weights[0]: S[:, 0]}",
        (T + "test_heads.py",),
        k="feature_weight",
    ),
    Mutation(
        "tempering_starts_from_the_features_posteriors",
        P + "em/_heads.py",
        "        for start in (vote, fit.lam)",
        "        for start in (fit.lam,)",
        (T + "test_heads.py",),
        k="feature_weight",
    ),
    Mutation(
        "tempering_ignores_the_held_out_prediction",
        P + "em/_heads.py",
        "        prior[rows] = torch.log_softmax(feature_weight * oof[rows], dim=-1)",
        "        pass",
        (T + "test_heads.py",),
        k="held_out",
    ),
    Mutation(
        "tempered_posteriors_not_kept",
        P + "em/_heads.py",
        "    fit.lam, fit.log_A, _ = max(ends, key=lambda end: end[2])",
        "    _, fit.log_A, _ = max(ends, key=lambda end: end[2])",
        (T + "test_heads.py",),
        k="feature_weight",
    ),
    # -- crowd labels (crowd/_labels.py, crowd/_validation.py) -------------------------
    Mutation(
        "crowd_none_is_a_label",
        CROWD,
        "mask = np.not_equal(arr, arr).astype(bool) | np.equal(arr, None)",
        "mask = np.not_equal(arr, arr).astype(bool)",
        (T + "test_crowd_labels.py",),
        k="dense",
    ),
    Mutation(
        "crowd_missing_sentinel_ignored",
        CROWD,
        "            mask |= _equal_mask(arr, missing)",
        "            pass",
        (T + "test_crowd_labels.py",),
        k="dense",
    ),
    Mutation(
        "crowd_conflicting_duplicates_accepted",
        CROWD,
        "conflict = dup[codes[dup] != codes[dup + 1]]",
        "conflict = dup[:0]",
        (T + "test_crowd_labels.py",),
        k="duplicates",
    ),
    Mutation(
        "crowd_vote_counts_ignore_the_label",
        CROWD,
        "counts = np.bincount(self.rows * k + self.codes, "
        "minlength=self.n_samples * k)",
        "counts = np.bincount(self.rows * k + 0 * self.codes, "
        "minlength=self.n_samples * k)",
        (T + "test_crowd_labels.py",),
        k="vote",
    ),
    Mutation(
        "validation_one_class_accepted",
        VALID,
        "    if seen.size < 2:",
        "    if seen.size < 1:",
        (T + "test_input_validation.py",),
    ),
    Mutation(
        "validation_gold_labels_dropped",
        VALID,
        "    return (mask, one_hot) if mask.any() else None",
        "    return None",
        (T + "test_gold_labels.py",),
    ),
    # -- the command line (cli.py) ------------------------------------------------
    Mutation(
        # issue 27, bug 5
        "cli_writes_predict_proba",
        CLI,
        "    proba = model.sample_posterior_",
        "    proba = model.predict_proba(X)",
        (T + "test_cli.py",),
        k="posterior",
    ),
    Mutation(
        # issue 27, bug 6
        "cli_model_loaded_but_default_fitted",
        CLI,
        "    return clone(model), X",
        "    return MetaAnnotatorClassifier(), X",
        (T + "test_cli.py",),
        k="model",
    ),
    Mutation(
        "cli_columns_not_matched_by_name",
        CLI,
        "        X = X[:, [columns.index(c) for c in expected]]",
        "        pass",
        (T + "test_cli.py",),
        k="model",
    ),
    # -- persistence (io/_persistence.py) --------------------------------------------
    Mutation(
        # issue 27, bug 7
        "save_drops_tau",
        PERSIST,
        "    for param, value in model.get_params(deep=False).items():\n",
        "    for param, value in model.get_params(deep=False).items():\n"
        '        if param == "tau":\n'
        "            continue\n",
        (T + "test_persistence.py",),
        k="default",
    ),
    Mutation(
        "load_tuples_become_lists",
        PERSIST,
        '            return items if kind == "list" else tuple(items)',
        "            return items",
        (T + "test_persistence.py",),
    ),
    Mutation(
        "load_skips_the_hash_check",
        PERSIST,
        "    if hashlib.sha256(tensor_bytes).hexdigest() != "
        'document.get("tensors_sha256"):',
        "    if False:",
        (T + "test_persistence.py",),
        k="tampered",
    ),
]


def check_snippets(mutations, root=REPO):
    """Problems of the list: unknown files, snippets not found exactly once."""
    problems = []
    names = [m.name for m in mutations]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{name}: the name is used twice")
    for m in mutations:
        path = root / m.file
        if not path.is_file():
            problems.append(f"{m.name}: no file {m.file}")
            continue
        count = path.read_text().count(m.old)
        if count != 1:
            problems.append(
                f"{m.name}: the snippet is found {count} times in {m.file} (must be "
                f"once): {m.old.strip().splitlines()[0][:70]!r}"
            )
        if m.old == m.new:
            problems.append(f"{m.name}: the replacement equals the snippet")
        for test in m.tests:
            if not (root / test).exists():
                problems.append(f"{m.name}: no test file {test}")
    return problems


def run_tests(tree, tests, k=None, time_limit=TIME_LIMIT):
    """Run ``tests`` in ``tree``; returns (status, seconds, detail): the first
    failing test, or else the last line of pytest's output."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider"]
    command += [*tests, *([] if k is None else ["-k", k])]
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    start = time.monotonic()
    try:
        result = subprocess.run(
            command,
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=time_limit,
        )
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start, f"over {time_limit} s"
    lines = (result.stdout + result.stderr).strip().splitlines()
    last = lines[-1] if lines else ""
    # the first failing test (pytest's short summary, -ra in pyproject.toml)
    for line in lines:
        if line.startswith(("FAILED ", "ERROR ")):
            last = line.split(" ", 1)[1].split(" - ", 1)[0]
            break
    # pytest: 0 passed, 1 failed, 5 collected nothing (a -k that matches nothing)
    status = {0: "passed", 1: "failed", 5: "no tests"}.get(result.returncode, "error")
    return status, time.monotonic() - start, last


def _copy_tree(destination):
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(
                source,
                destination / name,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        else:
            shutil.copy2(source, destination / name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the mutations")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run this mutation (repeatable)"
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="skip the run of the relevant tests without mutation",
    )
    args = parser.parse_args(argv)
    mutations = MUTATIONS
    if args.only:
        unknown = sorted(set(args.only) - {m.name for m in MUTATIONS})
        if unknown:
            parser.error(f"unknown mutation(s) {unknown}; see --list")
        mutations = [m for m in MUTATIONS if m.name in args.only]
    if args.list:
        for m in mutations:
            where = " ".join(m.tests) + ("" if m.k is None else f" -k {m.k!r}")
            print(f"{m.name:45s} {m.file:32s} {where}")
        return 0
    problems = check_snippets(MUTATIONS)
    if problems:
        print("the mutation list is out of sync with the code:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1

    rows, failed = [], False
    with tempfile.TemporaryDirectory(prefix="mutation_check_") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        if not args.no_baseline:
            # every relevant test file once, in one run: each -k is a subset
            tests = sorted({t for m in mutations for t in m.tests})
            status, seconds, last = run_tests(tree, tests, time_limit=4 * TIME_LIMIT)
            print(f"baseline (no mutation, {len(tests)} files): {status}, {last}")
            if status != "passed":
                message = "the tests fail without mutation: fix them first"
                print(message, file=sys.stderr)
                return 1
        for m in mutations:
            path = tree / m.file
            original = path.read_text()
            try:
                path.write_text(original.replace(m.old, m.new, 1))
                status, seconds, last = run_tests(tree, m.tests, m.k)
            finally:
                path.write_text(original)
            verdict = {
                "failed": "caught",
                "timeout": "caught",
                "error": "caught",
                "passed": "SURVIVED",
                "no tests": "NO TESTS",
            }[status]
            failed |= verdict not in ("caught",)
            by = last.rsplit("::", 1)[-1] if verdict == "caught" else last
            rows.append((m.name, m.file.rsplit("/", 1)[-1], verdict, seconds, by))
            print(f"{m.name:45s} {verdict:9s} {seconds:6.1f} s  {by}", flush=True)
    n_caught = sum(r[2] == "caught" for r in rows)
    print()
    print(f"{'mutation':45s} {'file':18s} {'result':9s} {'time':>7s}  caught by")
    for name, file, verdict, seconds, by in rows:
        print(f"{name:45s} {file:18s} {verdict:9s} {seconds:6.1f} s  {by}")
    print(f"\n{n_caught} of {len(rows)} mutations caught")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
