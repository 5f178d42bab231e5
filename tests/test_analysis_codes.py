"""Codes and code switching on constructed activations with known answers."""
import numpy as np
import pytest

from meanfield.analysis import code_fractions, code_switching, format_code, neuron_codes


def _acts():
    labels = np.array([0, 0, 1, 1, 2, 2])
    # neuron 0 on for classes 0, 1; neuron 1 on for class 2 only; neuron 2 on everywhere
    A = np.array([[0.9, 0.8, 0.7, 0.9, 0.1, 0.2],
                  [0.1, 0.0, 0.2, 0.1, 0.9, 0.6],
                  [0.6, 0.7, 0.9, 0.8, 0.7, 0.9]])
    return A, labels


def test_neuron_codes_constructed():
    A, labels = _acts()
    C = neuron_codes(A, labels)
    assert C.tolist() == [[1, 1, 0], [0, 0, 1], [1, 1, 1]]
    # class means exactly at a shifted threshold flip only that bit
    assert neuron_codes(A, labels, threshold=0.75).tolist() == [[1, 1, 0], [0, 0, 0], [0, 1, 1]]


def test_code_fractions_and_format():
    A, labels = _acts()
    C = neuron_codes(np.stack([A, A[[0, 0, 2]]]), labels)          # two samples
    fr = code_fractions(C)
    assert fr == pytest.approx({(1, 1, 0): 0.5, (0, 0, 1): 1 / 6, (1, 1, 1): 1 / 3})
    assert sum(fr.values()) == pytest.approx(1.0)
    assert format_code((1, 0, 1)) == "1-0-1"


def test_code_switching_counts():
    C = np.zeros((4, 3, 2), dtype=np.int8)
    C[2:, 1, 0] = 1          # neuron 1 switches once (between samples 1 and 2)
    C[1, 2, 1] = 1           # neuron 2 switches there and back
    sw = code_switching(C)
    assert sw["switches"] == 3 and sw["switching_neurons"] == 2
    assert sw["per_neuron"].tolist() == [0, 1, 2]
    assert sw["rate"] == pytest.approx(3 / 9)


def test_bad_input():
    A, labels = _acts()
    with pytest.raises(ValueError, match="activations"):
        neuron_codes(A[:, :5], labels)
    with pytest.raises(TypeError, match="labels"):
        neuron_codes(A, labels.astype(float))
    with pytest.raises(ValueError, match="class 3"):
        neuron_codes(A, labels, n_classes=4)
    with pytest.raises(ValueError, match="codes"):
        code_switching(np.zeros((3, 2)))
