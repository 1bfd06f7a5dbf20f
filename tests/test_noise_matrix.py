"""Noise-level matrix builders and their checks."""

import pytest
import torch

from framecast.sampling.noise_matrix import NoiseMatrix, build_matrix, matrix_image, matrix_steps


@pytest.mark.parametrize("name", ["full", "autoregressive", "pyramid"])
def test_named_schedules_are_valid(name):
    m = build_matrix(name, frames=4, steps=6)
    K = m.levels
    assert K.shape[1] == 4 and (K[0] == 1).all() and (K[-1] == 0).all()
    assert (K[1:] <= K[:-1]).all()  # monotone: never re-noised
    every_column_runs_all_steps = ((K[1:] != K[:-1]).sum(0) == 6).all()
    assert every_column_runs_all_steps


def test_shapes_of_the_three_schedules():
    full = build_matrix("full", 4, 6).levels
    assert full.shape == (7, 4) and (full == full[:, :1]).all()
    ar = build_matrix("autoregressive", 4, 6).levels
    assert ar.shape == (4 * 6 + 1, 4)
    for t in range(1, 4):  # column t starts when column t - 1 is clean
        start = int((ar[:, t] < 1).nonzero()[0])
        assert (ar[start - 1, t - 1] == 0) and (ar[: start - 1, t - 1] > 0).all()
    pyr = build_matrix("pyramid", 4, 6, offset=2).levels
    assert pyr.shape == (3 * 2 + 6 + 1, 4)
    starts = [int((pyr[:, t] < 1).nonzero()[0]) for t in range(4)]
    assert starts == [1, 3, 5, 7]
    assert torch.equal(build_matrix("pyramid", 4, 6, offset=6).levels, ar)
    assert torch.equal(build_matrix("pyramid", 4, 6, offset=0).levels, full)


def test_context_columns_stay_clean_and_model_calls():
    m = build_matrix("autoregressive", 4, 5, context=1)
    assert (m.levels[:, 0] == 0).all() and m.model_calls() == 3 * 5
    assert build_matrix("full", 4, 5).model_calls() == 5


def test_impossible_matrices_are_refused():
    with pytest.raises(ValueError, match="never rise"):
        NoiseMatrix(torch.tensor([[1.0, 0.5], [0.5, 1.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="last row"):
        NoiseMatrix(torch.tensor([[1.0], [0.5]]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        NoiseMatrix(torch.tensor([[2.0], [0.0]]))
    with pytest.raises(ValueError, match="shorter than the clip"):
        build_matrix("autoregressive", 4, 5, context=4)
    with pytest.raises(ValueError, match="unknown schedule"):
        build_matrix("zigzag", 4, 5)


def test_picture():
    img = matrix_image(build_matrix("pyramid", 4, 4, offset=1), cell=3)
    assert img.shape == ((3 + 4 + 1) * 3, 4 * 3, 3) and img.dtype.name == "uint8"


@pytest.mark.parametrize("name", ["autoregressive", "pyramid"])
def test_the_first_frame_takes_its_own_steps(name):
    K = build_matrix(name, 4, 3, first_steps=8).levels
    moves = K[1:] != K[:-1]
    assert int(moves[:, 0].sum()) == 8 and (moves[:, 1:].sum(0) == 3).all()
    assert int(moves[:, 0].nonzero()[-1]) < int(moves[:, 1:].any(1).nonzero()[0])  # frame 0 is clean before the others start
    assert torch.equal(K[8:], build_matrix(name, 4, 3, context=1).levels)  # then the schedule, frame 0 as context
    assert torch.allclose(K[:9, 0], torch.linspace(1, 0, 9))


def test_first_steps_changes_nothing_else():
    ar = build_matrix("autoregressive", 4, 6).levels
    assert torch.equal(build_matrix("autoregressive", 4, 6, first_steps=4).levels, ar)  # no more than the others' steps
    assert torch.equal(build_matrix("autoregressive", 4, 6, first_steps=12, context=1).levels,
                       build_matrix("autoregressive", 4, 6, context=1).levels)  # the first frame is given
    assert torch.equal(build_matrix("full", 4, 6, first_steps=12).levels, build_matrix("full", 4, 6).levels)
    assert build_matrix("autoregressive", 1, 3, first_steps=5).steps == 5


@pytest.mark.parametrize("name", ["full", "autoregressive", "pyramid"])
def test_steps_are_counted_without_building(name):
    for frames, steps, offset, first in [(1, 3, None, 0), (4, 1, None, 0), (5, 6, 2, 0), (5, 4, None, 9), (1, 2, None, 7), (3, 5, 0, 5)]:
        expected = build_matrix(name, frames, steps, offset=offset, first_steps=first).steps
        assert matrix_steps(name, frames, steps, offset=offset, first_steps=first) == expected
