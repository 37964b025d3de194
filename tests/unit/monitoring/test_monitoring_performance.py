"""Model quality on a labelled window, checked against values worked out by hand (scikit-learn's
definitions: binary metrics on the positive label, macro averages, ROC AUC with ties counted half)."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from modelog_services.monitoring.drift import SchemaError, performance


def test_binary_classification_metrics_with_scores() -> None:
    # TP 3 (rows 0, 3, 6), FP 1 (row 5), FN 1 (row 2), TN 3
    y_true = pa.array([1, 0, 1, 1, 0, 0, 1, 0])
    y_pred = pa.array([1, 0, 0, 1, 0, 1, 1, 0])
    # positives score .9 .4 .8 .7, negatives .1 .3 .6 .2: 15 of the 16 pairs are ordered right
    y_score = pa.array([0.9, 0.1, 0.4, 0.8, 0.3, 0.6, 0.7, 0.2])
    assert performance(y_true, y_pred, "classification", y_score) == pytest.approx(
        {"accuracy": 0.75, "precision": 0.75, "recall": 0.75, "f1": 0.75, "roc_auc": 15 / 16}
    )


def test_roc_auc_counts_a_tied_score_as_half_a_pair() -> None:
    got = performance(pa.array([1, 0, 1]), pa.array([1, 1, 0]), "classification", pa.array([0.5, 0.5, 0.9]))
    assert got["roc_auc"] == pytest.approx(0.75)  # pairs (0.5 vs 0.5) = 1/2, (0.9 vs 0.5) = 1


def test_multiclass_metrics_are_macro_averages() -> None:
    # a: P 1/2 R 1/2 F1 1/2; b: P 2/3 R 1 F1 4/5; c: P 1 R 1/2 F1 2/3
    got = performance(pa.array(list("aabbcc")), pa.array(list("abbbca")), "classification")
    assert got == pytest.approx(
        {
            "accuracy": 4 / 6,
            "precision": (1 / 2 + 2 / 3 + 1) / 3,
            "recall": (1 / 2 + 1 + 1 / 2) / 3,
            "f1": (1 / 2 + 4 / 5 + 2 / 3) / 3,
        }
    )


def test_string_labels_take_the_last_in_sorted_order_as_positive() -> None:
    got = performance(
        pa.array(["yes", "no", "yes", "no"]), pa.array(["yes", "yes", "no", "no"]), "classification"
    )
    assert (got["precision"], got["recall"]) == (0.5, 0.5)
    only_yes_found = performance(pa.array(["yes", "no"]), pa.array(["yes", "yes"]), "classification")
    assert (only_yes_found["precision"], only_yes_found["recall"]) == (0.5, 1.0)


def test_no_predicted_positive_gives_zero_precision_not_an_error() -> None:
    got = performance(pa.array([1, 1, 0]), pa.array([0, 0, 0]), "classification")
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)


def test_regression_errors() -> None:
    got = performance(pa.array([1.0, 2.0, 3.0, 4.0]), pa.array([1.5, 2.0, 2.0, 5.0]), "regression")
    assert got == pytest.approx({"mae": 0.625, "rmse": 0.75})


def test_rows_without_a_label_are_left_out() -> None:
    got = performance(pa.array([1.0, None, 3.0, math.nan]), pa.array([2.0, 100.0, 3.0, 100.0]), "regression")
    assert got == pytest.approx({"mae": 0.5, "rmse": math.sqrt(0.5)})


def test_labels_and_predictions_of_different_lengths_are_refused() -> None:
    with pytest.raises(SchemaError, match=r"differ in length \(3, 2\)"):
        performance(pa.array([1, 0, 1]), pa.array([1, 0]), "classification")


def test_text_labels_for_a_regression_are_refused() -> None:
    with pytest.raises(SchemaError, match="regression labels must be numbers"):
        performance(pa.array(["a"]), pa.array([1.0]), "regression")
