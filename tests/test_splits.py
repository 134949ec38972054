"""The held-out validation carve shared by every suite that selects on part of train."""

from __future__ import annotations

import numpy as np

from harness.splits import validation_indices


def test_cap_keeps_train_and_samples_validation_from_the_same_carve() -> None:
    train, validation = validation_indices(5000)
    capped_train, capped = validation_indices(5000, max_validation=240)
    assert len(validation) == 500 and len(capped) == 240
    np.testing.assert_array_equal(train, capped_train)  # experts train on the same rows
    assert set(capped) <= set(validation)
    # a random sample of the carve, not its first rows (train files are often label-sorted)
    assert capped.max() > validation[239]
    assert np.array_equal(capped, validation_indices(5000, max_validation=240)[1])
    # a cap above the carve's size changes nothing
    np.testing.assert_array_equal(
        validation_indices(100, max_validation=240)[1], validation_indices(100)[1]
    )
