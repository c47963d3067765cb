"""The fidelity goal, and when a measurement may stop early (no proving)."""

import numpy as np

from proofmint.circuits.fidelity import acceptable, agreement, measured, out_of_reach, samples_digest


def test_an_error_beyond_the_tolerance_of_the_whole_sets_span_stops_the_measurement():
    ref = [np.array([0.0, 0.1]), np.array([10.0, 0.0])]  # the set spans 10, the first sample 0.1
    assert not out_of_reach(ref, [np.array([0.05, 0.1])], "regression", 0.01)  # 0.5 % of 10
    assert out_of_reach(ref, [np.array([0.2, 0.1])], "regression", 0.01)  # 2 % of 10
    # stopped there, the partial record fails the goal too: its own span can only be smaller
    quality = agreement(ref[:1], [np.array([0.2, 0.1])], "regression", 0.01)
    assert not acceptable(quality, 0.01)


def test_one_clear_argmax_flip_in_48_stops_it_a_near_tie_does_not():
    """The set spans 10 and the tolerance is 2 % (0.2): a flip of a 0.3 margin by errors of
    0.16 is within the error bound but breaks argmax on a clear decision (1 of 48 > 1 %)."""
    rest = [np.array([0.0, 10.0, 0.0])] * 47
    clear = [np.array([1.0, 1.3, 0.0])] + rest
    assert out_of_reach(clear, [np.array([1.16, 1.14, 0.0])], "classification", 0.02)
    assert not out_of_reach(clear, [np.array([1.0, 1.29, 0.0])], "classification", 0.02)
    tie = [np.array([1.0, 1.1, 0.0])] + rest  # a 0.1 margin: within the tolerance, not a decision
    assert not out_of_reach(tie, [np.array([1.06, 1.04, 0.0])], "classification", 0.02)


def test_a_record_stopped_early_is_never_acceptable():
    ref = [np.array([0.0, 1.0])] * 2
    quality = agreement(ref, ref, "regression", 0.01) | {"rejected_after": 2}
    assert not acceptable(quality, 0.01)


def test_the_record_names_exactly_the_samples_judged():
    """A measurement stopped after two of three samples records the digest of those two: the
    registry's samplesDigest names what the figures were measured on, not what was offered."""
    samples = np.arange(12, dtype=np.float64).reshape(3, 4)
    ref = [np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([5.0, 0.0])]
    quality = measured(ref, ref[:2], samples, "regression", 0.01, "onnxruntime", rejected=False)
    assert quality["samples"] == 2 and "rejected_after" not in quality
    assert quality["samples_digest"] == samples_digest(samples[:2]) != samples_digest(samples)
    # the digest is of float32 values row after row, whatever the array's dtype or layout
    assert samples_digest(np.asfortranarray(samples.astype(np.float32))) == samples_digest(samples)
    assert measured(ref, ref[:1], samples, "regression", 0.01, "onnxruntime", rejected=True)["rejected_after"] == 1
