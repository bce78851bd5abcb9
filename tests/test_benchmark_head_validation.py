"""Smoke test of the head validation benchmark (the defaults' validation tasks)."""
# SPDX-License-Identifier: BSD-3-Clause

from benchmarks import head_validation


def test_run_with_overrides_gives_a_row_per_candidate_and_its_tables():
    results = head_validation.run(
        datasets=["aniso_rs1"],
        sizes=[5],
        repetitions=[2],
        candidates=["prototype, weight 1", "auto, penalty 10"],
        verbose=0,
    )
    rows = results["datasets"]["aniso_rs1"]["5"]
    assert len(rows) == 2
    for row in rows:
        assert set(row) == {"prototype, weight 1", "auto, penalty 10", "LR + DS"}
        for cell in row.values():
            assert 0.0 <= cell["accuracy"] <= 1.0 and 0.0 <= cell["truth"] <= 1.0
        # a named head is fitted untempered; below 10 items per class "auto"
        # never tries the MLP head
        assert row["prototype, weight 1"]["weight"] == 1.0
        assert row["auto, penalty 10"]["head"] in ("prototype", "linear")
    text = head_validation.markdown(results)
    assert "| auto, penalty 10 |" in text and "| LR + DS |" in text
