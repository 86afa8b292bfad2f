"""core.measured: a run's accuracy named as its metrics.json says it was measured, the validation split when
it says nothing (runs written before it did) or something unknown."""
import pytest

from core import measured


@pytest.mark.parametrize("content, evaluation", [
    ('{"accuracy": 0.5, "evaluation": "cross_validation"}', "cross_validation"),
    ('{"accuracy": 0.5, "evaluation": "held_out"}', "held_out"),
    ('{"accuracy": 0.5, "evaluation": "validation_split"}', "validation_split"),
    ('{"accuracy": 0.5}', "validation_split"),
    ('{"evaluation": "by eye"}', "validation_split"),
    ('{"evaluation": ["cross_validation"]}', "validation_split"),
    ("[1, 2]", "validation_split"),
    ('{"evaluation": "cross_', "validation_split"),
    (b"\xff\xfe", "validation_split"),
    (None, "validation_split"),
], ids=["cross-validation", "held-out", "validation", "older-run", "unknown", "a-list", "not-a-dict", "cut-short",
        "binary", "no-file"])
def test_the_run_says_how_it_measured(tmp_path, content, evaluation):
    if isinstance(content, bytes):
        (tmp_path / "metrics.json").write_bytes(content)
    elif content is not None:
        (tmp_path / "metrics.json").write_text(content)
    assert measured.evaluation_of(tmp_path) == evaluation
    assert measured.of_run(tmp_path) is measured.MEASURES[evaluation]


def test_the_words():
    cross = measured.measure("cross_validation")
    assert cross.percent(0.25) == "cross-validated accuracy 25%"
    assert cross.explained.startswith("Cross-validated accuracy: each picture was predicted by a model that did "
                                      "not see it")
    assert measured.measure("held_out").percent(0.5) == "accuracy on held-out training pictures 50%"
    assert measured.measure(None).percent(0.8) == "validation accuracy 80%"
    assert measured.measure(3) is measured.measure("nonsense") is measured.MEASURES["validation_split"]
