"""The benchmark's figures (sweeps/benchmark/plots.py): what each draws, from rows made up for the test."""

from __future__ import annotations

import pytest

from spikebench.sweeps.benchmark import plots, stats


def test_table_png_every_cells_text_lies_inside_its_cell_even_the_long_heuristics(tmp_path):
    long = "silent-neuron lift 0.00649537; regulariser through spike times (∂N/∂t := −1/T); discrete adjoint (spikes at step ends)"
    markdown = "\n".join([
        "# caption", "",
        "| Algorithm | Seeds | Test acc. (%) | Heuristics (not the loss gradient) |",
        "|---|---|---|---|",
        f"| eventprop | 3 | 76.7 ± 1.3 | {long} |",
        "| lstm | 3 | 89.2 ± 1.2 | none |",
        "", "| second | table |", "|---|---|", "| not | drawn |",
    ])
    fig = plots.table_figure(markdown)
    try:
        fig.canvas.draw()  # lays the texts out at the canvas's resolution
        renderer = fig.canvas.get_renderer()
        table = fig.axes[0].tables[0]
        texts = {key: cell.get_text().get_text() for key, cell in table.get_celld().items()}
        assert len(texts) == 3 * 4 and "drawn" not in "".join(texts.values())  # the first table only
        for key, cell in table.get_celld().items():
            box, text = cell.get_window_extent(renderer), cell.get_text().get_window_extent(renderer)
            assert box.x0 <= text.x0 and text.x1 <= box.x1 and box.y0 <= text.y0 and text.y1 <= box.y1, (key, texts[key])
    finally:
        plots.save(fig, tmp_path / "table.png", dpi=150)
    assert (tmp_path / "table.png").stat().st_size > 0


def test_accuracy_vs_time_draws_tuned_and_shared_cells_in_separate_panels(tmp_path):
    def row(algorithm, setting, seed):
        return {"algorithm": algorithm, "setting": setting, "seed": seed,
                "_curve": {"epoch_s": [1.0, 1.0, 1.0], "val_acc": [0.2, 0.4, 0.5 + 0.01 * seed]}}

    rows = [row(a, s, seed) for s in ("tuned", "shared") for a in ("bptt", "eprop") for seed in (0, 1, 2)]
    fig = plots.accuracy_vs_time(rows, ["bptt", "eprop"])
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["each algorithm at its tuned best", "the shared setting"]
        assert [len(ax.get_lines()) for ax in fig.axes] == [6, 6]  # 2 algorithms × 3 seeds in each panel
    finally:
        plots.save(fig, tmp_path / "acc.png", dpi=120)
    single = plots.accuracy_vs_time(rows[6:], ["bptt", "eprop"])  # the shared cells only: one panel, no title
    try:
        assert len(single.axes) == 1 and single.axes[0].get_title() == ""
    finally:
        plots.save(single, tmp_path / "one.png", dpi=120)


def test_verdict_figure_draws_each_algorithms_mean_and_t_interval_over_seeds_and_over_speakers(tmp_path):
    tuned = [{"algorithm": "bptt", "test_acc": v} for v in (0.70, 0.72, 0.77)]
    loso = [{"algorithm": "bptt", "speaker": k, "test_acc": v} for k, v in ((0, 0.3), (1, 0.5), (2, 0.4), (2, 0.6))]
    loso += [{"algorithm": "eventprop", "speaker": 0, "test_acc": 0.45}]  # no test-file cell yet: its speaker only
    fig = plots.verdict(tuned, loso, ["bptt", "lstm", "eventprop"])
    try:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["bptt", "eventprop"]  # the LSTM has no rows
        drawn = [(c.lines[0].get_xydata()[0], c.lines[2][0].get_segments()[0][:, 1]) for c in ax.containers]
        expected = [stats.t_interval([0.70, 0.72, 0.77]), stats.t_interval([0.3, 0.5, 0.5])]  # speaker 2: its mean
        for (point, (low, high)), (mean, half, _) in zip(drawn, expected):
            assert point[1] == pytest.approx(100 * mean) and (low, high) == pytest.approx((100 * (mean - half),
                                                                                          100 * (mean + half)))
        assert len(drawn) == 3 and drawn[2][0][1] == pytest.approx(45.0)  # one speaker: a mean without an interval
    finally:
        plots.save(fig, tmp_path / "verdict.png", dpi=50)
